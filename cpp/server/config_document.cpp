// yaml-cpp is first run over the text with an event handler that builds nothing (a pass
// costs about a second for the largest file accepted), which stops at a second document and
// at kMaxParsedNodes: YAML::LoadAll builds every document before returning, and yaml-cpp 0.7
// and 0.8 (before upstream PR 1319) start a new empty document at a stray ',' forever, so
// `printf , > config.yaml` once took all memory.
#include "server/config_document.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <sstream>
#include <system_error>

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>

#include "server/config.h"
#include "server/config_values.h"

namespace gridexp::config_yaml {
namespace {

// The events of a YAML stream, counted and then dropped: it stops the pass (by throwing) at
// the second document or past kMaxParsedNodes nodes.
class StreamLimits final : public YAML::EventHandler {
 public:
  struct SecondDocument {
    YAML::Mark mark;
  };
  struct TooManyNodes {
    YAML::Mark mark;
  };

  int documents() const { return documents_; }
  const YAML::Mark& first_document_mark() const { return first_document_mark_; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ > 1) throw SecondDocument{mark};
    first_document_mark_ = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { count_node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { count_node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    count_node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    count_node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    count_node(mark);
  }
  void OnMapEnd() override {}

 private:
  void count_node(const YAML::Mark& mark) {
    if (++nodes_ > kMaxParsedNodes) throw TooManyNodes{mark};
  }

  int documents_ = 0;
  std::size_t nodes_ = 0;
  YAML::Mark first_document_mark_;
};

Status yaml_error(const std::string& source_name, const YAML::Exception& e) {
  // DeepRecursion's own message is only "bad file".
  if (dynamic_cast<const YAML::DeepRecursion*>(&e) != nullptr) {
    return config_error(source_name, e.mark, "invalid YAML", "nested too deeply");
  }
  return config_error(source_name, e.mark, "invalid YAML", e.msg);
}

// Checks the stream's limits without building anything; the caller then builds the first
// document. Returns whether the stream has a document at all.
Result<bool> check_stream_limits(const std::string& yaml_text, const std::string& source_name) {
  std::istringstream stream(yaml_text);
  StreamLimits limits;
  try {
    YAML::Parser parser(stream);
    if (!parser.HandleNextDocument(limits)) return false;
    parser.HandleNextDocument(limits);
  } catch (const StreamLimits::SecondDocument& second) {
    // yaml-cpp makes no progress at a ',' outside a flow collection: it starts another empty
    // document there, and another, for ever. No real document starts with one.
    std::size_t at = static_cast<std::size_t>(std::max(second.mark.pos, 0));
    if (at < yaml_text.size() && yaml_text[at] == ',') {
      return config_error(source_name, second.mark, "invalid YAML",
                          "unexpected ',' outside a [list] or {mapping}");
    }
    return config_error(source_name, second.mark, kTopLevel,
                        "a config is one YAML document, but a second one starts here");
  } catch (const StreamLimits::TooManyNodes& too_many) {
    return config_error(source_name, too_many.mark, kTopLevel,
                        "the config has more than " + std::to_string(kMaxParsedNodes) +
                            " values; a grid's axes need far fewer");
  } catch (const YAML::Exception& e) {
    return yaml_error(source_name, e);
  }
  return limits.documents() > 0;
}

struct CloseFile {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

Status unreadable(const std::filesystem::path& path, int error_number) {
  return Status::invalid_argument(path.string() + ": cannot read the config file: " +
                                  std::generic_category().message(error_number));
}

}  // namespace

Result<std::string> read_config_file(const std::filesystem::path& path) {
  std::unique_ptr<std::FILE, CloseFile> file(std::fopen(path.c_str(), "rb"));
  if (!file) return unreadable(path, errno);
  std::string text;
  char buffer[1 << 16];
  std::size_t count = 0;
  while (text.size() <= kMaxConfigBytes &&
         (count = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) {
    text.append(buffer, count);
  }
  if (std::ferror(file.get())) return unreadable(path, errno);
  return text;
}

Result<YAML::Node> load_single_document(std::string_view yaml_text,
                                        const std::string& source_name) {
  if (yaml_text.size() > kMaxConfigBytes) {
    return config_error(source_name, YAML::Mark(), kTopLevel,
                        "the config is larger than " + std::to_string(kMaxConfigBytes >> 20) +
                            " MiB, the most a config may be");
  }
  std::string text(yaml_text);
  Result<bool> has_document = check_stream_limits(text, source_name);
  if (!has_document) return has_document.status();
  YAML::Node root;
  if (*has_document) {
    try {
      root = YAML::Load(text);  // the first document only
    } catch (const YAML::Exception& e) {
      return yaml_error(source_name, e);
    }
  }
  if (!*has_document || root.IsNull()) {
    return config_error(source_name, *has_document ? root.Mark() : YAML::Mark(), kTopLevel,
                        "the config is empty; it needs experiment_name and hyperparameters");
  }
  return root;
}

}  // namespace gridexp::config_yaml

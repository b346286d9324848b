// Zip extraction in three steps: check every entry (names, types, sizes, the destination's
// existing paths) without writing; inflate every file to a temporary beside its target; rename
// the temporaries into place. A failure before the renames removes the temporaries and the
// directories made for them, so the destination is left as it was.
#include "worker/archive.h"

#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/random.h"

namespace gridexp {
namespace {

struct Entry {
  zip_uint64_t index = 0;
  std::string name;  // as stored, for messages
  std::string path;  // relative to the destination, without a trailing '/'
  bool is_directory = false;
  int mode = 0644;  // files only
  std::uint64_t declared_size = 0;
};

struct ZipCloser {
  void operator()(zip_t* zip) const { zip_discard(zip); }
};
struct ZipFileCloser {
  void operator()(zip_file_t* file) const { zip_fclose(file); }
};

bool is_valid_utf8(std::string_view text) {
  static constexpr std::uint32_t kSmallestOfLength[] = {0, 0, 0x80, 0x800, 0x10000};
  std::size_t i = 0;
  while (i < text.size()) {
    auto lead = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    std::uint32_t code_point = 0;
    if (lead < 0x80) {
      ++i;
      continue;
    } else if ((lead & 0xE0) == 0xC0) {
      length = 2;
      code_point = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      code_point = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      code_point = lead & 0x07;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      auto continuation = static_cast<unsigned char>(text[i + k]);
      if ((continuation & 0xC0) != 0x80) return false;
      code_point = (code_point << 6) | (continuation & 0x3F);
    }
    if (code_point < kSmallestOfLength[length] || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return false;
    }
    i += length;
  }
  return true;
}

// The name in quotes for an error message, control bytes (and, when the name is not UTF-8,
// every non-ASCII byte) written as \xNN so the message stays one readable line.
std::string quote_name(std::string_view name) {
  bool escape_non_ascii = !is_valid_utf8(name);
  std::string out = "\"";
  for (char c : name) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7F || (escape_non_ascii && byte >= 0x80)) {
      char escaped[5];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// Why `name` is not a safe relative path, or empty when it is.
std::string path_problem(std::string_view name) {
  if (name.empty()) return "the name is empty";
  if (!is_valid_utf8(name)) return "the name is not valid UTF-8";
  if (name.find('\\') != std::string_view::npos) return "the name contains a backslash";
  if (name.front() == '/') return "the path is absolute";
  if (name.size() >= 2 && std::isalpha(static_cast<unsigned char>(name[0])) && name[1] == ':')
    return "the path starts with a drive letter";
  if (name.back() == '/') name.remove_suffix(1);
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = std::min(name.find('/', start), name.size());
    std::string_view component = name.substr(start, end - start);
    if (component.empty()) return "the path has an empty component";
    if (component == "..") return "the path contains a '..' component";
    if (component == ".") return "the path contains a '.' component";
    start = end + 1;
  }
  return {};
}

// Every proper ancestor of `path` ("a/b/c" -> "a", "a/b").
std::vector<std::string> ancestors(const std::string& path) {
  std::vector<std::string> result;
  for (std::size_t slash = path.find('/'); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    result.push_back(path.substr(0, slash));
  }
  return result;
}

class Extraction {
 public:
  Extraction(const std::filesystem::path& archive, const std::filesystem::path& destination,
             const ExtractLimits& limits, FileSystem& fs)
      : archive_(archive), destination_(destination), limits_(limits), fs_(fs) {}

  Status run() {
    if (Status status = open(); !status) return status;
    if (Status status = read_entries(); !status) return status;
    if (Status status = check_archive_paths(); !status) return status;
    if (Status status = check_destination(); !status) return status;
    Status status = create_directories();
    for (const Entry& entry : entries_) {
      if (!status) break;
      if (!entry.is_directory) status = inflate(entry);
    }
    if (!status) {
      roll_back();
      return status;
    }
    return move_into_place();
  }

 private:
  Status archive_error(Code code, const std::string& reason) const {
    return {code, "archive " + archive_.string() + ": " + reason};
  }
  Status entry_error(Code code, std::string_view name, const std::string& reason) const {
    return archive_error(code, "entry " + quote_name(name) + ": " + reason);
  }

  Status open() {
    int error_code = 0;
    zip_.reset(zip_open(archive_.c_str(), ZIP_RDONLY, &error_code));
    if (zip_) return Status::ok();
    zip_error_t error;
    zip_error_init_with_code(&error, error_code);
    std::string reason = zip_error_strerror(&error);
    zip_error_fini(&error);
    bool unreadable =
        error_code == ZIP_ER_OPEN || error_code == ZIP_ER_NOENT || error_code == ZIP_ER_READ;
    return archive_error(unreadable ? Code::kIoError : Code::kInvalidArgument,
                         "cannot open: " + reason);
  }

  Status read_entries() {
    zip_int64_t count = zip_get_num_entries(zip_.get(), 0);
    if (count < 0) return archive_error(Code::kInvalidArgument, "cannot count its entries");
    if (static_cast<std::uint64_t>(count) > limits_.max_entries) {
      return archive_error(Code::kTooLarge, "it has " + std::to_string(count) +
                                                " entries, more than the limit of " +
                                                std::to_string(limits_.max_entries));
    }
    std::uint64_t total_declared = 0;
    for (zip_uint64_t index = 0; index < static_cast<zip_uint64_t>(count); ++index) {
      Result<Entry> entry = read_entry(index);
      if (!entry) return entry.status();
      if (entry->declared_size > limits_.max_total_bytes - total_declared) {
        return entry_error(Code::kTooLarge, entry->name,
                           "the entries up to this one declare more than the limit of " +
                               std::to_string(limits_.max_total_bytes) + " bytes uncompressed");
      }
      total_declared += entry->declared_size;
      entries_.push_back(std::move(entry).value());
    }
    return Status::ok();
  }

  Result<Entry> read_entry(zip_uint64_t index) {
    zip_stat_t stat;
    zip_stat_init(&stat);
    if (zip_stat_index(zip_.get(), index, ZIP_FL_ENC_RAW, &stat) != 0) {
      return archive_error(Code::kInvalidArgument, "cannot read entry " + std::to_string(index) +
                                                       ": " + zip_strerror(zip_.get()));
    }
    constexpr zip_uint64_t kNeeded =
        ZIP_STAT_NAME | ZIP_STAT_SIZE | ZIP_STAT_COMP_METHOD | ZIP_STAT_ENCRYPTION_METHOD;
    if ((stat.valid & kNeeded) != kNeeded) {
      return archive_error(Code::kInvalidArgument,
                           "entry " + std::to_string(index) + " lacks its name or sizes");
    }
    Entry entry;
    entry.index = index;
    entry.name = stat.name;
    entry.declared_size = stat.size;
    if (std::string problem = path_problem(entry.name); !problem.empty()) {
      return entry_error(Code::kInvalidArgument, entry.name, problem);
    }
    entry.is_directory = entry.name.back() == '/';
    entry.path = entry.is_directory ? entry.name.substr(0, entry.name.size() - 1) : entry.name;
    if (stat.encryption_method != ZIP_EM_NONE) {
      return entry_error(Code::kInvalidArgument, entry.name, "it is encrypted");
    }
    if (!entry.is_directory && !zip_compression_method_supported(stat.comp_method, 0)) {
      return entry_error(
          Code::kInvalidArgument, entry.name,
          "its compression method " + std::to_string(stat.comp_method) + " is not supported");
    }
    if (Status status = read_type_and_mode(entry); !status) return status;
    return entry;
  }

  // Unix archives record the file type and permission bits in the upper half of the external
  // attributes; other systems record neither, and then the trailing '/' alone decides.
  Status read_type_and_mode(Entry& entry) {
    zip_uint8_t system = 0;
    zip_uint32_t attributes = 0;
    if (zip_file_get_external_attributes(zip_.get(), entry.index, 0, &system, &attributes) != 0) {
      return entry_error(Code::kInvalidArgument, entry.name, "cannot read its attributes");
    }
    auto unix_mode = static_cast<mode_t>(attributes >> 16);
    if (system != ZIP_OPSYS_UNIX || unix_mode == 0) return Status::ok();
    switch (unix_mode & S_IFMT) {
      case 0:
        break;
      case S_IFREG:
        if (entry.is_directory) {
          return entry_error(Code::kInvalidArgument, entry.name,
                             "it is a regular file but its name ends in '/'");
        }
        break;
      case S_IFDIR:
        if (!entry.is_directory) {
          return entry_error(Code::kInvalidArgument, entry.name,
                             "it is a directory but its name does not end in '/'");
        }
        break;
      case S_IFLNK:
        return entry_error(Code::kInvalidArgument, entry.name, "it is a symbolic link");
      default:
        return entry_error(Code::kInvalidArgument, entry.name,
                           "it is neither a regular file nor a directory");
    }
    entry.mode = static_cast<int>((unix_mode & 0755) | 0600);
    return Status::ok();
  }

  // No path may be reserved, be claimed twice, or be a file for one entry and a directory for
  // another.
  Status check_archive_paths() {
    std::map<std::string, bool> is_directory_by_path;
    for (const Entry& entry : entries_) {
      for (const std::string& reserved : limits_.reserved_paths) {
        if (entry.path == reserved || entry.path.starts_with(reserved + "/")) {
          return entry_error(
              Code::kInvalidArgument, entry.name,
              "it would write into " + quote_name(reserved) + ", which is reserved for the worker");
        }
      }
      for (const std::string& ancestor : ancestors(entry.path)) {
        auto [it, inserted] = is_directory_by_path.emplace(ancestor, true);
        if (!inserted && !it->second) {
          return entry_error(Code::kInvalidArgument, entry.name,
                             "its parent " + quote_name(ancestor) + " is a file in the archive");
        }
      }
      auto [it, inserted] = is_directory_by_path.emplace(entry.path, entry.is_directory);
      if (!inserted && !(it->second && entry.is_directory)) {
        return entry_error(Code::kInvalidArgument, entry.name, "another entry names the same path");
      }
    }
    for (const auto& [path, is_directory] : is_directory_by_path) {
      if (is_directory) directories_.insert(path);
    }
    return Status::ok();
  }

  // Walks each entry's path in the destination as far as it exists: every existing component
  // must be a real directory (a symlink could lead the write outside the destination), and an
  // existing file target must not be a directory.
  Status check_destination() const {
    struct stat info = {};
    if (::stat(destination_.c_str(), &info) == 0 && !S_ISDIR(info.st_mode)) {
      return archive_error(Code::kInvalidArgument,
                           "the destination " + destination_.string() + " is not a directory");
    }
    for (const Entry& entry : entries_) {
      std::vector<std::string> components = ancestors(entry.path);
      components.push_back(entry.path);
      for (std::size_t i = 0; i < components.size(); ++i) {
        std::filesystem::path current = destination_ / components[i];
        if (::lstat(current.c_str(), &info) != 0) {
          if (errno == ENOENT) break;
          return entry_error(Code::kIoError, entry.name,
                             "cannot inspect " + current.string() + ": " + std::strerror(errno));
        }
        if (S_ISLNK(info.st_mode)) {
          return entry_error(Code::kInvalidArgument, entry.name,
                             "its path meets the symbolic link " + current.string());
        }
        bool must_be_directory = i + 1 < components.size() || entry.is_directory;
        if (must_be_directory && !S_ISDIR(info.st_mode)) {
          return entry_error(Code::kInvalidArgument, entry.name,
                             current.string() + " exists and is not a directory");
        }
        if (!must_be_directory && S_ISDIR(info.st_mode)) {
          return entry_error(Code::kInvalidArgument, entry.name,
                             current.string() + " exists and is a directory");
        }
      }
    }
    return Status::ok();
  }

  // Creates the destination and every directory the archive needs, parents first (a parent
  // sorts before its children), remembering which were new so a rollback can remove them.
  Status create_directories() {
    std::vector<std::filesystem::path> needed = {destination_};
    for (const std::string& directory : directories_) needed.push_back(destination_ / directory);
    for (const std::filesystem::path& directory : needed) {
      struct stat info = {};
      if (::lstat(directory.c_str(), &info) == 0) continue;
      if (Status status = fs_.create_directories(directory); !status) {
        return archive_error(Code::kIoError, status.message());
      }
      created_directories_.push_back(directory);
    }
    return Status::ok();
  }

  // Inflates one file to a temporary beside its target, counting the bytes actually produced
  // against the declared size: the declared sizes were checked against the limit, so this also
  // bounds the total, whatever the headers claim.
  Status inflate(const Entry& entry) {
    std::filesystem::path target = destination_ / entry.path;
    std::filesystem::path temporary = target;
    temporary += "." + random_hex(6) + ".tmp";
    Result<std::unique_ptr<WritableFile>> file = fs_.create_exclusive(temporary, entry.mode);
    if (!file) return entry_error(Code::kIoError, entry.name, file.status().message());
    temporaries_.emplace_back(temporary, target);
    std::unique_ptr<zip_file_t, ZipFileCloser> source(zip_fopen_index(zip_.get(), entry.index, 0));
    if (!source) {
      return entry_error(Code::kInvalidArgument, entry.name,
                         std::string("cannot open: ") + zip_strerror(zip_.get()));
    }
    buffer_.resize(1 << 16);
    std::uint64_t inflated = 0;
    while (true) {
      zip_int64_t count = zip_fread(source.get(), buffer_.data(), buffer_.size());
      if (count < 0) {
        return entry_error(Code::kInvalidArgument, entry.name,
                           std::string("cannot inflate: ") + zip_file_strerror(source.get()));
      }
      if (count == 0) break;
      inflated += static_cast<std::uint64_t>(count);
      if (inflated > entry.declared_size) {
        return entry_error(Code::kTooLarge, entry.name,
                           "it inflates to more than the " + std::to_string(entry.declared_size) +
                               " bytes it declares");
      }
      if (Status status = (*file)->append(buffer_.data(), static_cast<std::size_t>(count));
          !status) {
        return entry_error(Code::kIoError, entry.name, status.message());
      }
    }
    if (inflated != entry.declared_size) {
      return entry_error(Code::kInvalidArgument, entry.name,
                         "it inflates to " + std::to_string(inflated) + " bytes, not the " +
                             std::to_string(entry.declared_size) + " it declares");
    }
    if (Status status = (*file)->sync_and_close(); !status) {
      return entry_error(Code::kIoError, entry.name, status.message());
    }
    return Status::ok();
  }

  Status move_into_place() {
    for (std::size_t i = 0; i < temporaries_.size(); ++i) {
      const auto& [temporary, target] = temporaries_[i];
      if (Status status = fs_.rename_durably(temporary, target); !status) {
        for (std::size_t k = i; k < temporaries_.size(); ++k)
          ignore_outcome(fs_.remove(temporaries_[k].first));
        return archive_error(Code::kIoError, status.message() + " (" + std::to_string(i) + " of " +
                                                 std::to_string(temporaries_.size()) +
                                                 " files were already replaced)");
      }
    }
    return Status::ok();
  }

  void roll_back() {
    for (const auto& [temporary, target] : temporaries_) ignore_outcome(fs_.remove(temporary));
    for (auto it = created_directories_.rbegin(); it != created_directories_.rend(); ++it) {
      ::rmdir(it->c_str());
    }
  }

  const std::filesystem::path& archive_;
  const std::filesystem::path& destination_;
  const ExtractLimits& limits_;
  FileSystem& fs_;
  std::unique_ptr<zip_t, ZipCloser> zip_;
  std::vector<Entry> entries_;
  std::set<std::string> directories_;  // relative; from directory entries and files' parents
  std::vector<std::filesystem::path> created_directories_;
  std::vector<std::pair<std::filesystem::path, std::filesystem::path>> temporaries_;
  std::vector<char> buffer_;
};

}  // namespace

Status extract_zip(const std::filesystem::path& archive, const std::filesystem::path& destination,
                   const ExtractLimits& limits, FileSystem& fs) {
  return Extraction(archive, destination, limits, fs).run();
}

}  // namespace gridexp

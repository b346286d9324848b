// The executor's main loop: commands in, trials run, events out.
#include "executor/executor_loop.h"

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <variant>

#include <pybind11/pybind11.h>

#include "common/clock.h"
#include "executor/command_reader.h"
#include "executor/event_writer.h"
#include "executor/experiment.h"
#include "executor/protocol.h"
#include "executor/python_errors.h"
#include "executor/python_runtime.h"
#include "executor/trial_context.h"

namespace gridexp {
namespace {

namespace py = pybind11;

// How often the idle loop takes the GIL to let Python run its signal handlers.
constexpr std::chrono::milliseconds kSignalCheckInterval{200};

// The next command, waiting with the GIL released (the user's background threads run
// meanwhile). Empty when a signal handler raised (SIGINT: KeyboardInterrupt) while waiting.
std::optional<Command> wait_for_command(CommandReader& commands) {
  while (true) {
    std::optional<Command> command;
    {
      py::gil_scoped_release release;
      command = commands.next(kSignalCheckInterval);
    }
    if (command) return command;
    if (PyErr_CheckSignals() != 0) {
      py::error_already_set raised;
      std::fprintf(stderr, "gridexp-executor: %s between trials; exiting\n",
                   exception_summary(raised).c_str());
      return std::nullopt;
    }
  }
}

// The command loop proper, once the interpreter runs. Python objects live only in here.
int serve(CommandReader& commands, EventSink& events, TrialContext& context,
          const ExecutorOptions& options) {
  Experiment experiment(options.workdir, options.shared_gpu);
  bool started = false;
  auto fatal = [&events](const std::string& error, const CodeLocation& location,
                         const std::string& traceback) {
    events.post(FatalEvent{error, location, traceback});
    return kExecutorExitFatal;
  };
  while (true) {
    std::optional<Command> command = wait_for_command(commands);
    if (!command) return kExecutorExitInterrupted;
    if (std::holds_alternative<EndOfCommands>(*command)) return kExecutorExitOk;
    if (const auto* error = std::get_if<ProtocolError>(&*command)) {
      return fatal("protocol error: " + error->message, {}, "");
    }
    if (const auto* start = std::get_if<StartCommand>(&*command)) {
      if (started) return fatal("protocol error: a second start command", {}, "");
      if (std::optional<StartFailure> failure = experiment.start(*start)) {
        return fatal(failure->error, failure->location, failure->traceback);
      }
      started = true;
      events.post(ReadyEvent{});
      continue;
    }
    const auto& run = std::get<RunCommand>(*command);  // a StopCommand never reaches here
    if (!started) return fatal("protocol error: run before start", {}, "");
    TrialOutcome outcome = experiment.run_trial(run, context);
    events.post(std::move(outcome.event));
    if (outcome.interrupted) return kExecutorExitInterrupted;
  }
}

}  // namespace

int run_executor(const ExecutorOptions& options) {
  SystemClock clock;
  EventWriter events(options.event_fd);
  TrialContext context(events, clock);
  int exit_status = kExecutorExitFatal;
  {
    CommandReader commands(options.command_fd, [&context](const StopCommand& stop) {
      context.request_stop(stop.trial_id, stop.reason);
    });
    Result<std::unique_ptr<PythonRuntime>> runtime =
        PythonRuntime::start(options.python_executable, options.workdir);
    if (!runtime) {
      events.post(FatalEvent{runtime.status().message(), {}, ""});
    } else {
      TrialContext::install(&context);
      exit_status = serve(commands, events, context, options);
      TrialContext::install(nullptr);
    }
    // The supervisor has every event before the interpreter finalizes, which runs atexit
    // handlers and joins non-daemon threads and so may take long.
    events.close();
  }
  return exit_status;
}

}  // namespace gridexp

#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/result.hpp"

namespace CLI {
class App;
}

namespace pgrm {

// Which command-line trees a command appears in.
enum Persona : unsigned {
    PersonaRepmgr = 1u << 0,   // repmgr …
    PersonaRepmgrd = 1u << 1,  // repmgrd …
    PersonaPgrm = 1u << 2,     // pgrm …
};

// What the dispatcher sets up before run(), so no command repeats it.
enum Precondition : unsigned {
    NeedsNothing = 0,
    NeedsConfig = 1u << 0,     // a repmgr.conf must be found and valid
    LongRunning = 1u << 1,     // runs until stopped: no warnings kept for its result
};

// The seed's options, shared by every repmgr command, before or after the command.
struct GlobalOptions {
    bool verbose = false;
    bool json = false;
    std::string dbname;
    std::string host;
    std::string port;
    std::string username;
    std::string data_dir;
    std::string config_file;
    std::string remote_user;
    int wal_keep_segments = 0;        // 0: not given
    bool ignore_rsync_warning = false;
    bool force = false;
};

struct Context {
    GlobalOptions options;
    std::optional<Config> config;     // set when found (always, with NeedsConfig)
    std::string self_exe;             // /proc/self/exe, for running ourselves again
    std::string command_name;         // "standby clone"

    const Config& cfg() const { return *config; }
};

class Command {
public:
    struct Spec {
        std::string group;            // "standby"; also the CLI subcommand
        std::string name;             // "clone"; empty: the group itself is the command
        std::string args;             // "[node]", for usage lines
        std::string summary;          // one line, for the COMMANDS list
        unsigned personas = PersonaRepmgr | PersonaPgrm;
        unsigned preconditions = NeedsNothing;
        std::vector<std::string> group_aliases;  // other names of the group: primary = master
    };

    virtual ~Command() = default;
    virtual Spec spec() const = 0;
    // Binds the command's own options and positionals into the command's members.
    virtual void declare(CLI::App&) {}
    // Runs after parsing succeeded and preconditions hold.
    virtual Result run(Context& ctx) = 0;

    std::string full_name() const {
        auto s = spec();
        return s.name.empty() ? s.group : s.group + " " + s.name;
    }
};

class Registry {
public:
    void add(std::unique_ptr<Command> command) { commands_.push_back(std::move(command)); }
    const std::vector<std::unique_ptr<Command>>& commands() const { return commands_; }
    Command* find(const std::string& group, const std::string& name) const;

private:
    std::vector<std::unique_ptr<Command>> commands_;
};

}  // namespace pgrm

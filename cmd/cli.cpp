#include "cmd/cli.hpp"

#include <charconv>
#include <limits>
#include <set>

#include <CLI/CLI.hpp>

#include "cmd/help.hpp"
#include "core/conninfo.hpp"
#include "core/error.hpp"
#include "pgrm_config.h"

namespace pgrm {

namespace {

constexpr unsigned kClient = PersonaRepmgr | PersonaPgrm;
constexpr unsigned kAll = PersonaRepmgr | PersonaPgrm | PersonaRepmgrd;

template <auto Member>
CLI::Option* option(CLI::App& app, const char* names, ParsedFlags& into) {
    return app.add_option(names, into.options.*Member);
}
// A value check whose message reads like the others: --port: invalid value "-1": must be …
CLI::Validator checked(const char* what, std::string (*problem)(std::string_view)) {
    return CLI::Validator(
        [problem](std::string& value) {
            std::string why = problem(value);
            return why.empty() ? why : "invalid value \"" + value + "\": " + why;
        },
        what);
}

std::string positive_int_problem(std::string_view value) {
    int n = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (value.empty() || ec != std::errc() || end != value.data() + value.size() || n < 1)
        return "must be an integer from 1 to " + std::to_string(std::numeric_limits<int>::max());
    return "";
}

template <auto Member>
CLI::Option* flag(CLI::App& app, const char* names, ParsedFlags& into) {
    return app.add_flag(names, into.options.*Member);
}

}  // namespace

const std::vector<GlobalOptionSpec>& global_option_specs() {
    using G = GlobalOptions;
    static const std::vector<GlobalOptionSpec> specs = {
        {"General", "--help", "--help", "show this help, then exit", kAll,
         [](CLI::App& a, const char* n, ParsedFlags& p) { return a.add_flag(n, p.help); }},
        {"General", "--version", "--version", "output version information, then exit", kAll,
         [](CLI::App& a, const char* n, ParsedFlags& p) { return a.add_flag(n, p.version); }},
        {"General", "--verbose", "--verbose", "output verbose activity information", kAll,
         flag<&G::verbose>},
        {"General", "--json", "--json", "print the result as one JSON document on stdout", kAll,
         flag<&G::json>},
        {"Connection", "-d,--dbname", "-d, --dbname=DBNAME", "database to connect to", kClient,
         option<&G::dbname>},
        {"Connection", "-h,--host", "-h, --host=HOSTNAME",
         "database server host or socket directory", kClient, option<&G::host>},
        {"Connection", "-p,--port", "-p, --port=PORT", "database server port", kClient,
         [](CLI::App& a, const char* n, ParsedFlags& p) {
             return a.add_option(n, p.options.port)->check(checked("PORT", port_problem));
         }},
        {"Connection", "-U,--username", "-U, --username=USERNAME",
         "database user name to connect as", kClient, option<&G::username>},
        {"Configuration", "-D,--data-dir", "-D, --data-dir=DIR",
         "local directory where the files will be copied to", kClient, option<&G::data_dir>},
        {"Configuration", "-f,--config_file,--config-file", "-f, --config_file=PATH",
         "path to the configuration file", kAll, option<&G::config_file>},
        {"Configuration", "-R,--remote-user", "-R, --remote-user=USERNAME",
         "database server username for rsync", kClient, option<&G::remote_user>},
        {"Configuration", "-w,--wal-keep-segments", "-w, --wal-keep-segments=VALUE",
         "minimum wal_keep_size, in 16 MB segments (default: 5000)", kClient,
         [](CLI::App& a, const char* n, ParsedFlags& p) {
             // Not CLI::PositiveNumber, whose message names a range up to DBL_MAX.
             return a.add_option(n, p.options.wal_keep_segments)
                 ->check(checked("POSITIVE", positive_int_problem));
         }},
        {"Configuration", "-I,--ignore-rsync-warning", "-I, --ignore-rsync-warning",
         "ignore rsync partial transfer warning", kClient, flag<&G::ignore_rsync_warning>},
        {"Configuration", "-F,--force", "-F, --force",
         "force potentially dangerous operations to happen", kClient, flag<&G::force>},
    };
    return specs;
}

struct Cli::Impl {
    const Registry& registry;
    PersonaChoice persona;
    CLI::App app;
    ParsedFlags parsed;
    // Each registered command of this persona with the CLI11 app it parses into.
    std::vector<std::pair<Command*, CLI::App*>> bound;

    Impl(const Registry& r, const PersonaChoice& p) : registry(r), persona(p), app(p.program) {}

    // Sets the root up before any subcommand exists: subcommands copy these settings.
    void build() {
        app.set_help_flag();  // -h is the host; help is --help, bound as a global option
        app.fallthrough();    // options may follow the command
        app.ignore_case();    // MASTER register
        app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
        for (const auto& spec : global_option_specs())
            if (spec.personas & persona.persona) spec.bind(app, spec.names, parsed);

        std::vector<Command*> commands = commands_of(registry, persona.persona);
        if (persona.persona == PersonaRepmgrd) {  // repmgrd is its one command, the daemon, itself
            for (Command* command : commands) bind(command, app);
            return;
        }
        // Every group by its own name first, so that an alias can tell a name taken.
        std::map<std::string, CLI::App*> groups;
        for (Command* command : commands) {
            auto spec = command->spec();
            if (!groups.count(spec.group)) groups[spec.group] = app.add_subcommand(spec.group, spec.summary);
        }
        std::set<std::pair<std::string, std::string>> aliased;
        for (Command* command : commands) {
            auto spec = command->spec();
            CLI::App* group = groups.at(spec.group);
            bind(command, spec.name.empty() ? *group : *group->add_subcommand(spec.name, spec.summary));
            for (const auto& alias : spec.group_aliases) {
                auto other = groups.find(alias);
                if (other == groups.end()) {
                    // An alias of the whole group (primary = master), given once.
                    if (aliased.emplace(spec.group, alias).second) group->alias(alias);
                } else if (!spec.name.empty()) {
                    // A group of its own here (pgrm's daemon, the daemon itself): the
                    // command under it too ("pgrm daemon pause" is "service pause").
                    bind(command, *other->second->add_subcommand(spec.name, spec.summary));
                }
            }
        }
    }

    void bind(Command* command, CLI::App& target) {
        command->declare(target);
        bound.emplace_back(command, &target);
    }

    Command* command_for(const CLI::App* sub) const {
        for (const auto& [command, app_of] : bound)
            if (app_of == sub) return command;
        return nullptr;
    }

    CLI::App* app_for(const Command* command) const {
        for (const auto& [c, app_of] : bound)
            if (c == command) return app_of;
        return nullptr;
    }

    // CLI11 takes the word after an option that needs a value as that value, even when
    // it is "--json", which then silently does not apply. Refuse an option name given so;
    // written --config_file=--json, it is meant.
    void refuse_options_as_values(const std::vector<std::string>& args) {
        std::vector<CLI::App*> apps{&app};
        for (std::size_t k = 0; k < apps.size(); ++k)
            for (CLI::App* sub : apps[k]->get_subcommands({})) apps.push_back(sub);
        auto is_option = [&](const std::string& word) {
            if (word.size() < 2 || word[0] != '-') return false;
            const std::string name = word.substr(0, word.find('='));
            for (CLI::App* a : apps)
                for (const CLI::Option* o : a->get_options())
                    if (o->check_name(name)) return true;
            return false;
        };
        for (CLI::App* a : apps)
            for (const CLI::Option* o : a->get_options()) {
                if (!o->nonpositional() || o->get_type_size() == 0 || o->count() == 0) continue;
                for (const std::string& value : o->results()) {
                    if (!is_option(value)) continue;
                    for (std::size_t i = 0; i + 1 < args.size(); ++i)
                        if (args[i + 1] == value && o->check_name(args[i]))
                            throw Error(ExitCode::BadConfig,
                                        "missing value for \"" + args[i] + "\": \"" + value + "\" is an option",
                                        "", "if it is the value, write " + o->get_name() + "=" + value);
                }
            }
    }

    std::string try_help() const {
        return "try \"" + persona.program + " --help\" for more information";
    }

    // The command the parsed words name: repmgrd's one command, or group [name].
    Invocation chosen() const {
        Invocation inv;
        inv.options = parsed.options;
        if (persona.persona == PersonaRepmgrd) {
            inv.command = bound.empty() ? nullptr : bound.front().first;
        } else if (auto groups = app.get_subcommands(); !groups.empty()) {
            CLI::App* group = groups.front();
            auto subs = group->get_subcommands();
            inv.command = command_for(subs.empty() ? group : subs.front());
            if (!inv.command && !parsed.help) {
                std::string names;
                for (const CLI::App* s : group->get_subcommands({}))
                    names += (names.empty() ? "" : "|") + s->get_name();
                throw Error(ExitCode::BadConfig,
                            "missing command: " + group->get_name() + " {" + names + "}", "",
                            try_help());
            }
        }
        if (inv.command) inv.command_name = inv.command->full_name();
        return inv;
    }
};

Cli::Cli(const Registry& registry, const PersonaChoice& persona)
    : impl_(std::make_unique<Impl>(registry, persona)) {
    impl_->build();
}

Cli::~Cli() = default;

Invocation Cli::parse(const std::vector<std::string>& args) {
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them so
    try {
        impl_->app.parse(reversed);
    } catch (const CLI::ExtrasError& e) {
        // CLI11 says "The following argument was not expected: frob"; name the word.
        std::string words;
        for (const auto& w : impl_->app.remaining()) words += (words.empty() ? "" : " ") + w;
        throw Error(ExitCode::BadConfig, "unknown command or argument \"" + words + "\"", "",
                    impl_->try_help());
    } catch (const CLI::ParseError& e) {
        std::string message = e.what();
        if (!message.empty() && message.back() == '\n') message.pop_back();
        throw Error(ExitCode::BadConfig, message, "", impl_->try_help());
    }
    impl_->refuse_options_as_values(args);
    if (impl_->parsed.version) {
        Invocation inv;
        inv.action = Invocation::Action::Version;
        inv.options = impl_->parsed.options;
        return inv;
    }
    Invocation inv = impl_->chosen();
    if (impl_->parsed.help) {
        inv.action = Invocation::Action::Help;
    } else if (!inv.command) {
        throw Error(ExitCode::BadConfig, "no command given", "", impl_->try_help());
    }
    return inv;
}

std::string Cli::help(const Invocation& invocation) const {
    if (invocation.command && impl_->persona.persona != PersonaRepmgrd)
        return command_help(impl_->persona, *invocation.command,
                            *impl_->app_for(invocation.command));
    return persona_help(impl_->registry, impl_->persona, impl_->app);
}

std::string Cli::version() const {
    if (impl_->persona.persona == PersonaPgrm) return std::string("pgrm ") + PGRM_VERSION;
    return impl_->persona.program + " " + PGRM_VERSION + " (pgrm)";
}

}  // namespace pgrm

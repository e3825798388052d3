#include <catch2/catch.hpp>

#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "core/error.hpp"
#include "core/server.hpp"

namespace fs = std::filesystem;
using namespace pgrm;

namespace {

// A data directory holding only PG_VERSION and postmaster.pid (enough for pg_ctl status),
// removed with everything in it.
struct FakeDataDir {
    fs::path path;
    explicit FakeDataDir(const std::string& pid_line) {
        std::random_device rd;
        path = fs::temp_directory_path() / ("pgrm-server-test-" + std::to_string(::getpid()) + "-" +
                                            std::to_string(rd()));
        fs::create_directories(path);
        fs::permissions(path, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
        std::ofstream(path / "PG_VERSION") << "15\n";
        std::ofstream(path / "postmaster.pid") << pid_line << "\n" << path.string() << "\n";
    }
    ~FakeDataDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

// A child that has exited and is not reaped yet: a zombie, as a postmaster just killed
// is until its parent waits for it. As root it first becomes postgres, as a postmaster
// would be, so that "pg_ctl status" (run as postgres) may signal it.
pid_t zombie() {
    pid_t pid = ::fork();
    if (pid == 0) {
        if (::geteuid() == 0)
            if (passwd* pw = ::getpwnam("postgres")) (void)!::setuid(pw->pw_uid);
        ::_exit(0);
    }
    for (int i = 0; i < 500 && process_state(pid) != 'Z'; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return pid;
}

}  // namespace

TEST_CASE("process_state reads /proc", "[server]") {
    CHECK(process_state(::getpid()) == 'R');
    pid_t z = zombie();
    CHECK(process_state(z) == 'Z');
    ::waitpid(z, nullptr, 0);
    CHECK_FALSE(process_state(z).has_value());
}

TEST_CASE("a zombie postmaster is not a running server", "[server]") {
    pid_t z = zombie();
    REQUIRE(process_state(z) == 'Z');
    {
        FakeDataDir dir(std::to_string(z));
        CHECK_FALSE(LocalServer(dir.path.string(), nullptr).running());
    }
    ::waitpid(z, nullptr, 0);
}

TEST_CASE("a live postmaster is running; none, or an unreadable pid file, is not", "[server]") {
    {
        FakeDataDir dir(std::to_string(::getpid()));
        CHECK(LocalServer(dir.path.string(), nullptr).running());
    }
    {
        FakeDataDir dir("-" + std::to_string(::getpid()));  // a single-user backend
        CHECK(LocalServer(dir.path.string(), nullptr).running());
    }
    for (const char* line : {"", "x", "0", "99999999999"}) {
        FakeDataDir dir(line);
        CHECK_FALSE(LocalServer(dir.path.string(), nullptr).running());
    }
    pid_t gone = ::fork();
    if (gone == 0) ::_exit(0);
    ::waitpid(gone, nullptr, 0);
    FakeDataDir dir(std::to_string(gone));
    CHECK_FALSE(LocalServer(dir.path.string(), nullptr).running());
    CHECK_FALSE(LocalServer("/nonexistent/pgrm", nullptr).running());
}

TEST_CASE("postmaster.opts: the options after the program, as pg_ctl restart takes them", "[server]") {
    CHECK(postmaster_options("/usr/lib/postgresql/15/bin/postgres \"-D\" \"/srv/pg data\" \"-p\" \"5433\"\n") ==
          "\"-D\" \"/srv/pg data\" \"-p\" \"5433\"");
    CHECK(postmaster_options("/usr/lib/postgresql/15/bin/postgres \"-D\" \"/var/lib/postgresql/15/main\" \"-c\" "
                             "\"config_file=/etc/postgresql/15/main/postgresql.conf\"\r\n") ==
          "\"-D\" \"/var/lib/postgresql/15/main\" \"-c\" \"config_file=/etc/postgresql/15/main/postgresql.conf\"");
    CHECK(postmaster_options("/usr/lib/postgresql/15/bin/postgres\n").empty());
    CHECK(postmaster_options("").empty());
}

TEST_CASE("a server starts again with the options it last ran with", "[server]") {
    FakeDataDir dir("12345");
    LocalServer server(dir.path.string(), nullptr);
    CHECK(server.last_options().empty());  // never started: no postmaster.opts
    std::ofstream(dir.path / "postmaster.opts") << "/usr/bin/postgres \"-D\" \"" << dir.path.string()
                                                << "\" \"-k\" \"/tmp/sock\"\n";
    CHECK(server.last_options() == "\"-D\" \"" + dir.path.string() + "\" \"-k\" \"/tmp/sock\"");
}

TEST_CASE("a Debian cluster is found by the data directory its postgresql.conf names", "[server]") {
    FakeDataDir data("0");
    FakeDataDir etc("0");  // stands for /etc/postgresql
    auto cluster_conf = [&](const std::string& version, const std::string& name, const std::string& text) {
        fs::create_directories(etc.path / version / name);
        std::ofstream(etc.path / version / name / "postgresql.conf") << text;
    };
    cluster_conf("14", "other", "data_directory = '/var/lib/postgresql/14/other'\n");
    CHECK_FALSE(find_debian_cluster(data.path.string(), etc.path.string()));

    // Commented out, then a later line, a trailing slash in ours, a comment after it.
    cluster_conf("15", "n1",
                 "#data_directory = '" + data.path.string() + "'\n"
                 "port = 5433\n"
                 "data_directory = '/nowhere'\n"
                 "  data_directory='" + data.path.string() + "/'   # use data in another directory\n");
    auto found = find_debian_cluster(data.path.string(), etc.path.string());
    REQUIRE(found);
    CHECK(found->version == "15");
    CHECK(found->name == "n1");
    CHECK(found->config_directory == (etc.path / "15" / "n1").string());

    cluster_conf("15", "n1", "data_directory = '" + data.path.string() + "'\ndata_directory = '/nowhere'\n");
    CHECK_FALSE(find_debian_cluster(data.path.string(), etc.path.string()));  // the last one counts
    CHECK_FALSE(find_debian_cluster("", etc.path.string()));
    CHECK_FALSE(find_debian_cluster(data.path.string(), (etc.path / "absent").string()));
}

TEST_CASE("the service command: the setting, else pg_ctlcluster for a Debian cluster, else pg_ctl", "[server]") {
    using V = std::vector<std::string>;
    DebianCluster debian{"15", "main", "/etc/postgresql/15/main"};
    CHECK(service_command("systemctl start 'postgresql@15-main'", debian, "start") ==
          V{"systemctl", "start", "postgresql@15-main"});
    CHECK(service_command("", debian, "stop") == V{"pg_ctlcluster", "15", "main", "stop"});
    CHECK(service_command("", std::nullopt, "restart").empty());
    CHECK_THROWS_AS(service_command("pg_ctlcluster '15 main start", std::nullopt, "start"), Error);

    FakeDataDir data("0");
    Config c;
    CHECK(server_control_hint(&c, "/data/n1", "start") == "pg_ctl -D /data/n1 start");
    CHECK(server_control_hint(nullptr, "/data/n1", "stop") == "pg_ctl -D /data/n1 -m fast stop");
    c.service_start_command = "sudo -n systemctl start postgresql@15-main";
    c.service_stop_command = "pg_ctlcluster 15 main stop";
    CHECK(server_control_hint(&c, "/data/n1", "start") == "sudo -n systemctl start postgresql@15-main");
    CHECK(server_control_hint(&c, "/data/n1", "stop") == "pg_ctlcluster 15 main stop");
    CHECK(server_control_hint(&c, "/data/n1", "restart") == "pg_ctl -D /data/n1 restart");
}

TEST_CASE("config_directory: the setting, else none outside a Debian cluster", "[server]") {
    Config c;
    CHECK(config_directory(&c, "/nonexistent/pgrm/data") == "");
    c.config_directory = "/etc/pg/n1";
    CHECK(config_directory(&c, "/nonexistent/pgrm/data") == "/etc/pg/n1");
}

TEST_CASE("a Debian cluster by SHOW config_file's path alone", "[server]") {
    auto found = debian_cluster_of_config_file("/etc/postgresql/15/main/postgresql.conf");
    REQUIRE(found);
    CHECK(found->version == "15");
    CHECK(found->name == "main");
    CHECK(found->config_directory == "/etc/postgresql/15/main");
    CHECK_FALSE(debian_cluster_of_config_file("/var/lib/postgresql/15/main/postgresql.conf"));
    CHECK_FALSE(debian_cluster_of_config_file("/etc/postgresql/15/main/conf.d/x.conf"));
    CHECK_FALSE(debian_cluster_of_config_file("/etc/postgresql/15/postgresql.conf"));
    CHECK_FALSE(debian_cluster_of_config_file(""));
}

TEST_CASE("server control: what pgrm runs, how it knows, and a warning when pg_ctl cannot find the configuration",
          "[server]") {
    const DebianCluster debian{"15", "main", "/etc/postgresql/15/main"};
    Config c;

    // Found in /etc/postgresql: pg_ctlcluster, reloads by SQL, nothing to warn of.
    ServerControl found = judge_server_control(c, "/var/lib/postgresql/15/main",
                                               "/etc/postgresql/15/main/postgresql.conf", debian);
    CHECK(found.via == "debian_cluster");
    CHECK(found.start == "pg_ctlcluster 15 main start");
    CHECK(found.stop == "pg_ctlcluster 15 main stop");
    CHECK(found.reload == "SELECT pg_reload_conf()");
    CHECK(found.warning.empty());

    // The same server, its cluster not found by its data directory: pg_ctl would start
    // it without /etc's configuration; the warning names the command to set.
    ServerControl lost = judge_server_control(c, "/var/lib/postgresql/15/main",
                                              "/etc/postgresql/15/main/postgresql.conf", std::nullopt);
    CHECK(lost.via == "pg_ctl");
    CHECK(lost.start == "pg_ctl -D /var/lib/postgresql/15/main start");
    CHECK(lost.warning.find("pg_ctlcluster 15 main start") != std::string::npos);
    CHECK(lost.warning.find("service_start_command") != std::string::npos);

    // Elsewhere than Debian's layout: the example is pg_ctl with config_file.
    ServerControl elsewhere = judge_server_control(c, "/srv/pg/n1", "/srv/conf/n1/postgresql.conf", std::nullopt);
    CHECK(elsewhere.warning.find("-c config_file=/srv/conf/n1/postgresql.conf") != std::string::npos);

    // Configuration in the data directory (or unknown: no privilege to read it): no warning.
    CHECK(judge_server_control(c, "/srv/pg/n1", "/srv/pg/n1/postgresql.conf", std::nullopt).warning.empty());
    CHECK(judge_server_control(c, "/srv/pg/n1", "", std::nullopt).warning.empty());

    // The settings win, for each action that has one; reload through its command when set.
    c.service_start_command = "systemctl start postgresql@15-main";
    c.service_reload_command = "systemctl reload postgresql@15-main";
    ServerControl set = judge_server_control(c, "/var/lib/postgresql/15/main",
                                             "/etc/postgresql/15/main/postgresql.conf", std::nullopt);
    CHECK(set.via == "settings");
    CHECK(set.start == "systemctl start postgresql@15-main");
    CHECK(set.reload == "systemctl reload postgresql@15-main");
    CHECK(set.warning.empty());
}

TEST_CASE("a server that does not answer is fenced by its file and a pending SIGHUP, only in its own directory",
          "[server]") {
    // postmaster.pid names a process that runs elsewhere (this test): a stale file whose
    // PID another program has. Nothing written, nothing signalled.
    {
        FakeDataDir dir(std::to_string(::getpid()));
        CHECK(make_read_only_unanswered(dir.path.string()).find("does not run in") != std::string::npos);
        CHECK_FALSE(fs::exists(dir.path / "postgresql.auto.conf"));
    }
    CHECK(make_read_only_unanswered("/nonexistent/pgrm") == "no postmaster.pid to read");

    // A "postmaster" in the data directory with a process it forked, both stopped (frozen):
    // the setting is written, and each takes the SIGHUP as it runs again (by default it
    // ends them: what a real server's processes do with it is reload).
    FakeDataDir dir("0");
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t postmaster = ::fork();
    if (postmaster == 0) {
        // SIGHUP's default action, whatever this test inherited (nohup ignores it).
        ::signal(SIGHUP, SIG_DFL);
        if (::chdir(dir.path.c_str()) != 0) ::_exit(1);
        pid_t backend = ::fork();
        if (backend == 0) {
            for (;;) ::pause();
        }
        (void)!::write(fds[1], &backend, sizeof backend);
        for (;;) ::pause();
    }
    pid_t backend = 0;
    REQUIRE(::read(fds[0], &backend, sizeof backend) == sizeof backend);
    ::close(fds[0]);
    ::close(fds[1]);
    std::ofstream(dir.path / "postmaster.pid") << postmaster << "\n" << dir.path.string() << "\n";
    ::kill(backend, SIGSTOP);
    ::kill(postmaster, SIGSTOP);
    for (int i = 0; i < 500 && (process_state(postmaster) != 'T' || process_state(backend) != 'T'); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));

    CHECK(make_read_only_unanswered(dir.path.string()).empty());
    std::ifstream conf(dir.path / "postgresql.auto.conf");
    std::string text((std::istreambuf_iterator<char>(conf)), std::istreambuf_iterator<char>());
    CHECK(text.find("default_transaction_read_only = 'on'") != std::string::npos);
    // Still frozen: the signal waits.
    CHECK(process_state(postmaster) == 'T');
    CHECK(process_state(backend) == 'T');

    ::kill(backend, SIGCONT);
    ::kill(postmaster, SIGCONT);
    int status = 0;
    REQUIRE(::waitpid(postmaster, &status, 0) == postmaster);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGHUP);
    for (int i = 0; i < 500 && process_state(backend) && process_state(backend) != 'Z'; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto left = process_state(backend);
    CHECK((!left || *left == 'Z'));
}

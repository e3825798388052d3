#include "core/recovery.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.hpp"
#include "core/log.hpp"

namespace pgrm {

namespace fs = std::filesystem;

namespace {

std::string conf_quote(const std::string& value) {
    std::string out = "'";
    for (char c : value) out += (c == '\'') ? std::string("''") : std::string(1, c);
    return out + "'";
}

// "key = 'value'" → key, or "" for comments and blank lines.
std::string line_key(const std::string& line) {
    size_t i = line.find_first_not_of(" \t");
    if (i == std::string::npos || line[i] == '#') return "";
    size_t end = line.find_first_of(" \t=", i);
    return line.substr(i, end == std::string::npos ? std::string::npos : end - i);
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Written as the directory's owner would have written it.
void write_owned(const fs::path& path, const std::string& text, const struct stat& owner) {
    fs::path tmp = path;
    tmp += ".pgrm-tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << text;
        if (!out.flush())
            throw Error(ExitCode::BadConfig, "could not write \"" + tmp.string() + "\"");
    }
    if (::chown(tmp.c_str(), owner.st_uid, owner.st_gid) != 0 && geteuid() == 0)
        throw Error(ExitCode::BadConfig, "could not change owner of \"" + tmp.string() +
                                             "\": " + std::strerror(errno));
    ::chmod(tmp.c_str(), 0600);
    fs::rename(tmp, path);
}

}  // namespace

std::string set_conf_line(const std::string& text, const std::string& key,
                          const std::optional<std::string>& value) {
    std::istringstream in(text);
    std::string out, line;
    while (std::getline(in, line))
        if (line_key(line) != key) out += line + "\n";
    if (value) out += key + " = " + conf_quote(*value) + "\n";
    return out;
}

std::string primary_conninfo_for(const Conninfo& source, const std::string& application_name) {
    Conninfo ci;
    for (const auto& [k, v] : source.params)
        if (k != "password" && k != "dbname" && k != "replication" &&
            k != "fallback_application_name" && k != "application_name")
            ci.set(k, v);
    if (!application_name.empty()) ci.set("application_name", application_name);
    return ci.str();
}

namespace {

struct stat owner_of(const std::string& data_directory) {
    struct stat owner {};
    if (::stat(data_directory.c_str(), &owner) != 0)
        throw Error(ExitCode::BadConfig, "could not read \"" + data_directory + "\": " +
                                             std::strerror(errno));
    return owner;
}

}  // namespace

void set_auto_conf(const std::string& data_directory, const std::string& key,
                   const std::optional<std::string>& value) {
    struct stat owner = owner_of(data_directory);
    fs::path auto_conf = fs::path(data_directory) / "postgresql.auto.conf";
    std::string text = fs::exists(auto_conf) ? read_file(auto_conf) : "";
    write_owned(auto_conf, set_conf_line(text, key, value), owner);
}

void configure_standby(const std::string& data_directory, const std::string& primary_conninfo) {
    fs::path dir = data_directory;
    fs::path auto_conf = dir / "postgresql.auto.conf";
    set_auto_conf(data_directory, "primary_conninfo", primary_conninfo);
    set_auto_conf(data_directory, "default_transaction_read_only", std::nullopt);
    write_owned(dir / "standby.signal", "", owner_of(data_directory));
    std::error_code ec;
    fs::remove(dir / "recovery.signal", ec);
    log::info("wrote standby.signal and primary_conninfo in \"" + auto_conf.string() + "\"");
}

void unconfigure_standby(const std::string& data_directory) {
    fs::path dir = data_directory;
    std::error_code ec;
    fs::remove(dir / "standby.signal", ec);
    set_auto_conf(data_directory, "primary_conninfo", std::nullopt);
    log::info("removed standby.signal and primary_conninfo from \"" + dir.string() + "\"");
}

}  // namespace pgrm

#pragma once

#include <optional>
#include <string>

#include "core/conninfo.hpp"

namespace pgrm {

// The lines of postgresql.auto.conf with key set to value (quoted as postgresql.conf
// wants), or removed when value is nullopt. Other lines stay as they were.
std::string set_conf_line(const std::string& text, const std::string& key,
                          const std::optional<std::string>& value);

// primary_conninfo for a standby of source: where and as whom to connect, never the
// password (the standby finds it in its passfile) nor the database.
std::string primary_conninfo_for(const Conninfo& source, const std::string& application_name);

// Makes data_directory start as a standby of primary_conninfo on PostgreSQL 12+:
// standby.signal present, recovery.signal gone, primary_conninfo in
// postgresql.auto.conf, and the fence repmgrd puts on a primary there lifted
// (default_transaction_read_only, see make_read_only in core/server): a standby is
// read-only anyway, and kept, the fence would make a later promotion a read-only
// primary. Files handed to the directory's owner.
void configure_standby(const std::string& data_directory, const std::string& primary_conninfo);

// Undoes configure_standby: standby.signal and primary_conninfo gone, so the server
// starts as a primary again.
void unconfigure_standby(const std::string& data_directory);

// Sets (or with nullopt removes) one setting in data_directory's postgresql.auto.conf,
// keeping the file's owner.
void set_auto_conf(const std::string& data_directory, const std::string& key,
                   const std::optional<std::string>& value);

}  // namespace pgrm

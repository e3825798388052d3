#include <csignal>
#include <string>
#include <vector>

#include "cmd/dispatch.hpp"

int main(int argc, char** argv) {
    // A write to a closed pipe or socket fails (EPIPE) instead of ending the process:
    // OpenSSL writes to etcd's TLS sockets without MSG_NOSIGNAL, and an etcd member that
    // died mid-request killed repmgrd, leaving its primary unfenced; and a command run by
    // repmgrd (standby promote) carries on to its end when repmgrd dies under it. Its own
    // children start with SIGPIPE's default action again (core/exec).
    std::signal(SIGPIPE, SIG_IGN);
    return pgrm::dispatch(std::vector<std::string>(argv, argv + argc));
}

/* sluice-server — the control plane (docs/server.md). */
#include "server.h"

int main(int argc, char **argv)
{
    return server_main(argc, argv);
}

/* sluice-agent — the data plane (docs/agent.md). */
#include "agent.h"

int main(int argc, char **argv)
{
    return agent_main(argc, argv);
}

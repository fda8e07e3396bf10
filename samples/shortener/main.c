/* sluice-shortener — the sample API (docs/shortener.md). */
#include "shortener.h"

int main(int argc, char **argv)
{
    return shortener_main(argc, argv);
}

/* version — one version string for every sluice program (--version, /v1/config, spans). */
#ifndef SLUICE_VERSION_H
#define SLUICE_VERSION_H

#define SLUICE_VERSION "0.1.0"

#endif

/* The three C23 integer parsers that the TChecker library of the tcheckerpy wheel imports from
   glibc >= 2.38 (GCC 13 headers map strtol & co. to them), for glibc 2.36. They differ from the
   C99 functions only in accepting a "0b" prefix, which TChecker's inputs never contain.
   Built and linked by .ci/install_tchecker.sh only when the library does not load as shipped. */
#include <stdlib.h>

long __isoc23_strtol(const char *s, char **end, int base) { return strtol(s, end, base); }

long long __isoc23_strtoll(const char *s, char **end, int base) { return strtoll(s, end, base); }

unsigned long __isoc23_strtoul(const char *s, char **end, int base) { return strtoul(s, end, base); }

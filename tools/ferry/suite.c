#include "suite.h"

int suite_install(ferry_server *srv)
{
    return 0;
}

/* worker.c: placeholder until the in-server worker lands */
#include "jobq.h"
#include "shared.h"

void
jobq_register_workers(void)
{
}

/*-------------------------------------------------------------------------
 *
 * provider.c
 *	  Providers: HTTP processing behind one interface (SPEC section 7).
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

/* Breaker state for jobq.metrics(); none yet. */
void
jobq_provider_metrics(StringInfo buf)
{
}

/*-------------------------------------------------------------------------
 *
 * registry.h
 *	  Handler registrations (jobq.register), cached per backend.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBQ_REGISTRY_H
#define JOBQ_REGISTRY_H

#include "executor/spi.h"
#include "nodes/pg_list.h"

#include "call.h"

/* How a job type is run in the server: exactly one kind per registration. */
typedef enum JobqHandlerKind
{
	JOBQ_KIND_HANDLER,			/* handler(jobq.jobs) RETURNS jsonb */
	JOBQ_KIND_UNITS,			/* unit_handler(jobq.jobs, int) RETURNS bytea */
	JOBQ_KIND_PROVIDERS			/* a provider chain */
} JobqHandlerKind;

typedef struct JobqRegistration
{
	char	   *job_type;
	char	   *queue;
	JobqHandlerKind kind;
	Oid			handler;		/* the handler or unit handler */
	Oid			finalizer;		/* InvalidOid when none */
	List	   *providers;		/* of char *, for JOBQ_KIND_PROVIDERS */
	int			max_attempts;	/* 0: the GUC default */
	int64		timeout_ms;		/* 0: none */
	Oid			owner;			/* handlers run as this role */
	/* the worker's saved plans, made on first use */
	JobqCallable *handler_call;
	JobqCallable *finalizer_call;
	int64		avg_us;			/* moving average of its handlers' run time */
} JobqRegistration;

/* A weighted validator of one job type (SPEC section 10). */
typedef struct JobqValidator
{
	char	   *name;
	Oid			fn;				/* validator(jsonb) RETURNS real */
	double		weight;
	Oid			owner;			/* runs as the role that added it */
	JobqCallable *call;
} JobqValidator;

/* The validators of one job type and its threshold. */
typedef struct JobqValidation
{
	char	   *job_type;
	List	   *validators;		/* of JobqValidator */
	double		threshold;
} JobqValidation;

/* One queue served by the workers, with its registered job types. */
typedef struct JobqQueue
{
	char	   *name;
	Datum		job_types;		/* text[] */
	bool		units_only;		/* every type has a unit handler: claim one at a time */
} JobqQueue;

typedef struct JobqRegistry
{
	MemoryContext cxt;			/* everything below, and the callables */
	int			nregs;
	JobqRegistration *regs;
	int			nqueues;
	JobqQueue  *queues;
	Oid			jobs_type;		/* the row type jobq.jobs */
	List	   *validations;	/* of JobqValidation, for types with validators */
} JobqRegistry;

/* The OID of a relation in schema jobq, or InvalidOid. */
extern Oid	jobq_relid(const char *relname);

/*
 * The registry as of now, reloaded when a registration changed.  Needs a
 * transaction and SPI.  Returns NULL when jobq.registrations does not exist
 * (the extension is older than 0.2, or absent).
 */
extern JobqRegistry *jobq_registry(void);
extern JobqRegistration *jobq_registration(JobqRegistry *registry, const char *job_type);
extern void jobq_registry_invalidate(void);
extern void jobq_registry_pin(void);
extern void jobq_registry_unpin(void);
extern void jobq_registry_unpin_all(void);

/*
 * Score a payload with the job type's validators: the `validate` JSON, and
 * whether it passed.  NULL when the type has no validators.  Needs SPI.
 */
extern Jsonb *jobq_validate_payload(JobqRegistry *registry, const char *job_type,
									Datum payload, bool *passed);

#endif							/* JOBQ_REGISTRY_H */

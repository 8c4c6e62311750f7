// Package upcast turns an event value written at any registered schema version into the
// newest version of its type: a chain of typed Go functions registered per (event type, from
// version), with Avro schema resolution carrying the value across every step that has no
// function.
//
// A step goes from one registered version of a subject to the next registered one (versions
// deleted from the registry are skipped). For a step with a function registered for its
// from-version, the value is decoded at the from-version into the function's input type, the
// function runs, and its output is the value at the next version. For a step without one, the
// value is resolved from the from-version's schema into the next version's by the Avro
// specification (reader defaults fill fields the writer lacks, promotions widen numbers).
// Steps are applied one at a time, never collapsed into one resolution, so a field dropped in
// one version and re-added with a default in a later one gets the default. The steps between
// two schema IDs are worked out from the registry's version list the first time the pair is
// needed and kept for the Upcaster's life.
//
// Output version rule: a value is re-encoded at the newest registered version of its subject
// as the codec last saw it (codec.Latest: cached and re-read from the registry after the
// codec's latest-TTL), or at the value's own version or the highest version this Upcaster has
// already written for the subject, whichever is highest. So within one Upcaster the output
// version of a subject never goes down, a version registered while it runs is used at most
// one latest-TTL later (at once for values already written with it), and a schema ID never
// seen before is looked up in the registry when the first value carrying it arrives.
//
// Check verifies at start that every registered version of every routed subject has a path
// to the newest: each step either has a function (whose input and output types fit the two
// versions) or resolves by both the specification's rules (internal/compat) and hamba/avro's
// resolver, which the codec decodes with. It names every gap.
//
// Guarantees: an Upcaster is safe for concurrent use. Upcast is deterministic for a given
// registry state: the same input and versions give the same output bytes. A function that
// returns an error, or panics, fails only the value at hand (StepError). Errors wrap the
// sentinels of this package or of internal/codec; codec.ErrRegistryUnavailable is the only
// transient one (see Transient).
//
// The package knows Avro, the registry and the chain, not Kafka.
package upcast

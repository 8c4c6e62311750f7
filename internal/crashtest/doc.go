// Package crashtest is the crash matrix of the whole pipeline: load from
// ingest and from a Kafka-native producer, faults (SIGKILL of `pyrite dev`,
// clean restarts), and after each fault the checks the design's delivery
// guarantees promise: every accepted event exactly once on the events topic
// for read_committed readers, per-aggregate order, the projection equal to
// a fold of the topic, reactor effects once, nothing stuck in a retry topic.
//
// The package holds the checks and the report table; the matrix itself is
// TestCrashMatrix (the whole `pyrite dev` killed) and TestCrashMatrixProcesses
// (ingest, upcaster and projector as separate processes, each killed in turn,
// the upcaster and projector grown from one instance to three and back; it
// needs PYRITE_TEST_POSTGRES for the projectors' shared store). `make test` runs a bounded
// form of both; `make crash` the full one
// (sizes from PYRITE_CRASH_EVENTS, PYRITE_CRASH_AGGREGATES and
// PYRITE_CRASH_KILLS).
package crashtest

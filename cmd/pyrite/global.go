package main

import (
	"flag"
	"strings"

	"github.com/pyrite-dev/pyrite/internal/config"
	"github.com/pyrite-dev/pyrite/internal/kafkaconn"
)

// globalFlag is a connection flag every command accepts, so that one command line (an
// alias, a script's $PYRITE_FLAGS) works for all of them. A command that uses the flag
// binds it itself, with its own help; acceptGlobalFlags adds the others as accepted and
// unused. The Kafka TLS and SASL flags (DESIGN.md section 7) are accepted the same way,
// as kafkaconn binds them.
type globalFlag struct {
	name, env, def, help string
}

func globalFlags() []globalFlag {
	return []globalFlag{
		{name: "brokers", env: "PYRITE_BROKERS", def: config.DefaultBrokers, help: "comma-separated Kafka seed brokers, host:port"},
		{name: "registry", env: "PYRITE_REGISTRY", def: config.DefaultRegistry, help: "schema registry base URL"},
	}
}

// acceptGlobalFlags defines on fs every global flag it does not define itself, as
// accepted and unused. parseFlags and parseArgs call it before parsing.
func acceptGlobalFlags(fs *flag.FlagSet) {
	for _, g := range globalFlags() {
		if fs.Lookup(g.name) == nil {
			fs.String(g.name, config.Env(g.env, g.def), g.help+" (env "+g.env+"; global: accepted, not used by this command)")
		}
	}
	if fs.Lookup("kafka-tls-ca") == nil { // the Kafka TLS and SASL flags, accepted and unused
		new(kafkaconn.Config).Bind(fs)
	}
}

// globalFlagNames is "--brokers, --registry".
func globalFlagNames() string {
	var names []string
	for _, g := range globalFlags() {
		names = append(names, "--"+g.name)
	}
	return strings.Join(names, ", ")
}

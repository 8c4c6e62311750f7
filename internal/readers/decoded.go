package readers

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/pyrite-dev/pyrite/schemas"
)

// Types maps registry subjects to event types and aggregates to their events topics;
// *topology.Topology implements it.
type Types interface {
	EventType(subject string) (string, error)
	EventsTopic(aggregate string) (string, error)
}

// InstanceName is instance, or "<host>/<pid>" when it is empty.
func InstanceName(instance string) string {
	if instance != "" {
		return instance
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

// Group is a consumer group and the topics it reads.
type Group struct {
	Name   string
	Topics []string
}

// Decoded returns the readers of groups that decode every type into the newest version
// among local (as bus.CodecDecoder does): one per group and event type whose aggregate's
// events topic the group reads. Subjects with no event type (integration events) are left
// out. Instance defaults to "<host>/<pid>"; the time is now.
func Decoded(groups []Group, local []schemas.File, types Types, instance string) []Reader {
	instance = InstanceName(instance)
	newest := map[string]schemas.File{}
	for _, f := range local {
		if cur, ok := newest[f.Subject]; !ok || f.Version > cur.Version {
			newest[f.Subject] = f
		}
	}
	now := time.Now().UTC()
	var out []Reader
	for _, f := range newest {
		typ, err := types.EventType(f.Subject)
		if err != nil {
			continue
		}
		agg, _, _ := strings.Cut(typ, ":")
		topic, err := types.EventsTopic(agg)
		if err != nil {
			continue
		}
		for _, g := range groups {
			if slices.Contains(g.Topics, topic) {
				out = append(out, Reader{Group: g.Name, Type: typ, Subject: f.Subject, Version: f.Version,
					Schema: f.Text, Instance: instance, Time: now})
			}
		}
	}
	sortReaders(out)
	return out
}

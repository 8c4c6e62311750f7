package eventstore

import "github.com/twmb/franz-go/pkg/kgo"

// Balancer is the store's group balancer, for a test's own member of a store's group.
func Balancer(addr string) kgo.GroupBalancer { return &balancer{addr: addr} }

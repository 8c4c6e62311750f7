package topology

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// ErrNotConverged: Ensure still found fixable changes after applying them.
var ErrNotConverged = errors.New("topology: cluster did not converge")

// Apply makes the plan's fixable changes: it creates missing topics (an
// already existing one counts as created), sets drifted configs with
// incremental alters, and raises partition counts that are below the
// declaration after re-reading the current count (so applying the same
// plan twice is harmless). Unfixable changes are skipped; find them with
// plan.Unfixable(). It returns the changes it made or found already made,
// and every failure joined, each naming its topic; a failure of one topic
// does not stop the others.
func Apply(ctx context.Context, adm *kadm.Client, plan Plan) ([]Change, error) {
	var (
		applied []Change
		errs    []error
		alters  = make(map[string][]ConfigDrift)
		order   []string
		grow    []PartitionDrift
	)
	for _, c := range plan.Changes {
		if !c.Fixable() {
			continue
		}
		switch c := c.(type) {
		case MissingTopic:
			if err := createTopic(ctx, adm, c.Topic); err != nil {
				errs = append(errs, err)
				continue
			}
			applied = append(applied, c)
		case ConfigDrift:
			if _, seen := alters[c.Topic]; !seen {
				order = append(order, c.Topic)
			}
			alters[c.Topic] = append(alters[c.Topic], c)
		case PartitionDrift:
			grow = append(grow, c)
		case PairMismatch:
			// Fixed by the pair's PartitionDrift changes.
		}
	}
	for _, topic := range order {
		changes := alters[topic]
		if err := alterConfigs(ctx, adm, topic, changes); err != nil {
			errs = append(errs, err)
			continue
		}
		for _, c := range changes {
			applied = append(applied, c)
		}
	}
	for _, c := range grow {
		if err := addPartitions(ctx, adm, c.Topic, c.Declared); err != nil {
			errs = append(errs, err)
			continue
		}
		applied = append(applied, c)
	}
	return applied, errors.Join(errs...)
}

func createTopic(ctx context.Context, adm *kadm.Client, t Topic) error {
	configs := make(map[string]*string, len(t.Configs))
	for k, v := range t.Configs {
		configs[k] = kadm.StringPtr(v)
	}
	resp, err := adm.CreateTopic(ctx, t.Partitions, t.ReplicationFactor, configs, t.Name)
	if errors.Is(err, kerr.TopicAlreadyExists) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("topology: create %s: %w%s", t.Name, err, detail(resp.ErrMessage))
	}
	return nil
}

func alterConfigs(ctx context.Context, adm *kadm.Client, topic string, changes []ConfigDrift) error {
	ops := make([]kadm.AlterConfig, len(changes))
	for i, c := range changes {
		ops[i] = kadm.AlterConfig{Op: kadm.SetConfig, Name: c.Key, Value: kadm.StringPtr(c.Declared)}
	}
	resps, err := adm.AlterTopicConfigs(ctx, ops, topic)
	if err != nil {
		return fmt.Errorf("topology: alter configs of %s: %w", topic, err)
	}
	r, err := resps.On(topic, nil)
	if err == nil {
		err = r.Err
	}
	if err != nil {
		return fmt.Errorf("topology: alter configs of %s: %w%s", topic, err, detail(r.ErrMessage))
	}
	return nil
}

func addPartitions(ctx context.Context, adm *kadm.Client, topic string, want int32) error {
	details, err := adm.ListTopicsWithInternal(kadm.WithAuthorizedOps(ctx), topic)
	if err != nil {
		return fmt.Errorf("topology: partitions of %s: %w", topic, err)
	}
	d, ok := details[topic]
	if ok && d.Err != nil {
		err = d.Err
	} else if !ok {
		err = kerr.UnknownTopicOrPartition
	}
	if err != nil {
		return fmt.Errorf("topology: partitions of %s: %w", topic, err)
	}
	if int32(len(d.Partitions)) >= want {
		return nil // already there (or more: reported by Plan, never shrunk)
	}
	resps, err := adm.UpdatePartitions(ctx, int(want), topic)
	if err != nil {
		return fmt.Errorf("topology: add partitions to %s: %w", topic, err)
	}
	r, err := resps.On(topic, nil)
	if err == nil {
		err = r.Err
	}
	if err != nil {
		return fmt.Errorf("topology: add partitions to %s: %w%s", topic, err, detail(r.ErrMessage))
	}
	return nil
}

func detail(msg string) string {
	if msg == "" {
		return ""
	}
	return " (" + msg + ")"
}

// Ensure plans, applies the fixable changes and plans again until no
// fixable change is left, for at most five rounds (a real cluster may
// report new topics a moment late). It returns the final plan, which holds
// only unfixable changes, or ErrNotConverged with what is still pending.
// pyrite dev calls it at start-up.
func (t *Topology) Ensure(ctx context.Context, adm *kadm.Client) (Plan, error) {
	const rounds = 5
	wait := 100 * time.Millisecond
	var p Plan
	for round := 0; ; round++ {
		var err error
		if p, err = t.Plan(ctx, adm); err != nil {
			return Plan{}, err
		}
		if len(p.Fixable()) == 0 {
			return p, nil
		}
		if round == rounds {
			return p, fmt.Errorf("%w after %d rounds:\n%s", ErrNotConverged, rounds, p)
		}
		if _, err := Apply(ctx, adm, p); err != nil {
			return p, err
		}
		if round > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return p, ctx.Err()
			case <-timer.C:
			}
			wait *= 2
		}
	}
}

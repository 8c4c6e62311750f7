package eventstore

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// protocolName is the group protocol of the store's balancer. Every member of a group must
// speak it; a member with another balancer cannot join.
const protocolName = "pyrite-eventstore-v1"

// table is who owns which partition in one generation, as the group leader decided it. The
// leader sends it to every member in its assignment's user data, so each member learns every
// owner's address at the same time as its own partitions.
type table struct {
	Generation int32              `json:"g"`
	Members    []string           `json:"m"` // advertised addresses
	Owners     map[string][]int32 `json:"o"` // topic -> index into Members per partition, -1 for none
}

// owner returns the address of the owner of topic's partition p, or "".
func (t *table) owner(topic string, p int32) string {
	if t == nil {
		return ""
	}
	ps := t.Owners[topic]
	if p < 0 || int(p) >= len(ps) || ps[p] < 0 || int(ps[p]) >= len(t.Members) {
		return ""
	}
	return t.Members[ps[p]]
}

// partitions returns the number of partitions of topic the leader balanced, or 0.
func (t *table) partitions(topic string) int32 {
	if t == nil {
		return 0
	}
	return int32(len(t.Owners[topic]))
}

func decodeTable(b []byte) (*table, error) {
	var t table
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%w: ownership table: %v", ErrBadAssignment, err)
	}
	for topic, ps := range t.Owners {
		for p, m := range ps {
			if m < -1 || int(m) >= len(t.Members) {
				return nil, fmt.Errorf("%w: ownership table: %s[%d] names member %d of %d", ErrBadAssignment, topic, p, m, len(t.Members))
			}
		}
	}
	return &t, nil
}

// memberMeta is what a member tells the leader when it joins: where to forward requests to,
// and the partitions it held (so that the leader keeps them where they are).
type memberMeta struct {
	Addr  string             `json:"a"`
	Owned map[string][]int32 `json:"o,omitempty"`
}

func decodeMember(b []byte) (kmsg.ConsumerMemberMetadata, memberMeta, error) {
	var m kmsg.ConsumerMemberMetadata
	if err := m.ReadFrom(b); err != nil {
		return m, memberMeta{}, fmt.Errorf("%w: member metadata: %v", ErrBadAssignment, err)
	}
	var mm memberMeta
	if err := json.Unmarshal(m.UserData, &mm); err != nil {
		return m, memberMeta{}, fmt.Errorf("%w: member user data: %v", ErrBadAssignment, err)
	}
	if mm.Addr == "" {
		return m, memberMeta{}, fmt.Errorf("%w: member advertises no address", ErrBadAssignment)
	}
	return m, mm, nil
}

// balancer is the store's kgo.GroupBalancer: eager, sticky (a member keeps what it held as
// long as the spread stays within one partition), and it publishes the ownership table.
type balancer struct {
	addr    string
	onTable func(*table) // called with each table received at sync, from kgo's group goroutine
}

func (b *balancer) ProtocolName() string { return protocolName }
func (b *balancer) IsCooperative() bool  { return false }

func (b *balancer) JoinGroupMetadata(topics []string, current map[string][]int32, _ int32) []byte {
	m := kmsg.NewConsumerMemberMetadata()
	m.Topics = topics
	m.UserData, _ = json.Marshal(memberMeta{Addr: b.addr, Owned: current}) // cannot fail
	return m.AppendTo(nil)
}

func (b *balancer) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	var a kmsg.ConsumerMemberAssignment
	if err := a.ReadFrom(assignment); err != nil {
		return nil, fmt.Errorf("%w: assignment: %v", ErrBadAssignment, err)
	}
	t, err := decodeTable(a.UserData)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]int32, len(a.Topics))
	for _, at := range a.Topics {
		out[at.Topic] = append(out[at.Topic], at.Partitions...)
	}
	if b.onTable != nil {
		b.onTable(t)
	}
	return out, nil
}

func (b *balancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	mb := &memberBalancer{}
	topics := map[string]struct{}{}
	for _, m := range members {
		cm, mm, err := decodeMember(m.ProtocolMetadata)
		if err != nil {
			return nil, nil, fmt.Errorf("member %s: %w", m.MemberID, err)
		}
		interests := map[string]bool{}
		for _, t := range cm.Topics {
			topics[t] = struct{}{}
			interests[t] = true
		}
		mb.members = append(mb.members, planMember{id: m.MemberID, meta: mm, topics: interests})
	}
	return mb, topics, nil
}

type planMember struct {
	id     string
	meta   memberMeta
	topics map[string]bool
}

type memberBalancer struct {
	members []planMember
	gen     int32
}

// SetBalanceInfo receives the generation being balanced into.
func (mb *memberBalancer) SetBalanceInfo(i kgo.BalanceInfo) { mb.gen = i.Generation }

// Balance is never called: kgo calls BalanceOrError.
func (mb *memberBalancer) Balance(topics map[string]int32) kgo.IntoSyncAssignment {
	p, _ := mb.BalanceOrError(topics)
	return p
}

func (mb *memberBalancer) BalanceOrError(topics map[string]int32) (kgo.IntoSyncAssignment, error) {
	owners := assign(mb.members, topics)
	t := table{Generation: mb.gen, Owners: owners}
	for _, m := range mb.members {
		t.Members = append(t.Members, m.meta.Addr)
	}
	ud, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	plan := make(syncPlan, len(mb.members))
	for i, m := range mb.members {
		a := kmsg.NewConsumerMemberAssignment()
		for _, topic := range slices.Sorted(mapKeys(owners)) {
			var ps []int32
			for p, o := range owners[topic] {
				if int(o) == i {
					ps = append(ps, int32(p))
				}
			}
			if len(ps) > 0 {
				a.Topics = append(a.Topics, kmsg.ConsumerMemberAssignmentTopic{Topic: topic, Partitions: ps})
			}
		}
		a.UserData = ud
		plan[i] = kmsg.SyncGroupRequestGroupAssignment{MemberID: m.id, MemberAssignment: a.AppendTo(nil)}
	}
	return plan, nil
}

type syncPlan []kmsg.SyncGroupRequestGroupAssignment

func (p syncPlan) IntoSyncAssignment() []kmsg.SyncGroupRequestGroupAssignment { return p }

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// assign spreads the partitions of topics over members (in their given order) and returns,
// per topic, the index of each partition's member (-1 when no member wants the topic).
// Members keep the partitions they held while they hold at most ceil(P/n), and of each topic
// at most its ceil(P_t/n); the rest go to the member with the fewest of the topic (then the
// fewest overall); then partitions move from the fullest to the emptiest member until
// the counts differ by at most one (among members that can take them). Deterministic.
func assign(members []planMember, topics map[string]int32) map[string][]int32 {
	owners := make(map[string][]int32, len(topics))
	total := 0
	for t, n := range topics {
		ps := make([]int32, max(n, 0))
		for i := range ps {
			ps[i] = -1
		}
		owners[t] = ps
		total += len(ps)
	}
	if len(members) == 0 {
		return owners
	}
	limit := (total + len(members) - 1) / len(members)
	count := make([]int, len(members))
	perTopic := make([]map[string]int, len(members)) // so that every topic's load is spread too
	for i := range perTopic {
		perTopic[i] = map[string]int{}
	}
	for i, m := range members {
		for _, t := range slices.Sorted(mapKeys(m.meta.Owned)) {
			ps, ok := owners[t]
			if !ok || !m.topics[t] {
				continue
			}
			topicLimit := (len(ps) + len(members) - 1) / len(members)
			for _, p := range m.meta.Owned[t] {
				if p >= 0 && int(p) < len(ps) && ps[p] == -1 && count[i] < limit && perTopic[i][t] < topicLimit {
					ps[p] = int32(i)
					count[i]++
					perTopic[i][t]++
				}
			}
		}
	}
	fewest := func(t string) int {
		best := -1
		for i, m := range members {
			if !m.topics[t] {
				continue
			}
			if best < 0 || perTopic[i][t] < perTopic[best][t] || (perTopic[i][t] == perTopic[best][t] && count[i] < count[best]) {
				best = i
			}
		}
		return best
	}
	for _, t := range slices.Sorted(mapKeys(owners)) {
		for p, o := range owners[t] {
			if o == -1 {
				if i := fewest(t); i >= 0 {
					owners[t][p] = int32(i)
					count[i]++
					perTopic[i][t]++
				}
			}
		}
	}
	// Even out: move one partition at a time from a member above the least loaded member
	// that can take it by more than one.
	for range total {
		moved := false
		order := make([]int, len(members))
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(count[b], count[a]) })
	search:
		for _, from := range order {
			for _, t := range slices.Sorted(mapKeys(owners)) {
				for p, o := range owners[t] {
					if int(o) != from {
						continue
					}
					to := fewest(t)
					if to >= 0 && count[from]-count[to] > 1 {
						owners[t][p] = int32(to)
						count[from]--
						count[to]++
						perTopic[from][t]--
						perTopic[to][t]++
						moved = true
						break search
					}
				}
			}
		}
		if !moved {
			break
		}
	}
	return owners
}

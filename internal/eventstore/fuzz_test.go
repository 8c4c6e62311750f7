package eventstore

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzDecodeAssignment feeds group assignments (written by whichever member leads the group)
// to the decoder: it must not panic, and a decoded table never names a member it lacks.
func FuzzDecodeAssignment(f *testing.F) {
	a := kmsg.NewConsumerMemberAssignment()
	a.Topics = []kmsg.ConsumerMemberAssignmentTopic{{Topic: "t", Partitions: []int32{0}}}
	a.UserData = []byte(`{"g":3,"m":["http://a:1"],"o":{"t":[0,-1]}}`)
	f.Add(a.AppendTo(nil))
	a.UserData = []byte(`{"g":3,"m":[],"o":{"t":[5]}}`)
	f.Add(a.AppendTo(nil))
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var got *table
		bal := &balancer{onTable: func(tb *table) { got = tb }}
		if _, err := bal.ParseSyncAssignment(b); err != nil {
			return
		}
		for topic, ps := range got.Owners {
			for p := range ps {
				if o := got.owner(topic, int32(p)); ps[p] >= 0 && o == "" && got.Members[ps[p]] != "" {
					t.Fatalf("%s[%d] owner lost", topic, p)
				}
			}
		}
	})
}

// FuzzDecodeMember feeds join metadata (written by any member) to the leader's decoder.
func FuzzDecodeMember(f *testing.F) {
	f.Add((&balancer{addr: "http://a:1"}).JoinGroupMetadata([]string{"t"}, map[string][]int32{"t": {1}}, 2))
	f.Add([]byte{0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, mm, err := decodeMember(b)
		if err == nil && mm.Addr == "" {
			t.Fatal("a member without an address was accepted")
		}
	})
}

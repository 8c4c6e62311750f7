// Package groupleave bounds how long closing a consumer group member's Kafka client takes.
//
// franz-go's Client.Close leaves the group and waits until the group's management loop has
// ended. That loop sends JoinGroup and SyncGroup with the client's own context, so that a
// final commit in the revoke callback is still possible, and a broker holds a JoinGroup until
// every known member rejoined or the rebalance timeout passed (a minute by default). A
// member that closes while its join is held therefore waits for the slowest member of the
// group, or for the whole rebalance timeout, whatever its caller's deadline.
//
// A Leaver gives the client a context of its own (kgo.WithContext) and closes it in two
// steps: leave the group within a bound, then, past it, cancel the client's context, which
// ends the held request at once, and close. The member then leaves without a LeaveGroup the
// broker saw; the group drops it at its session timeout. Safe for concurrent use.
//
// kgo sends no LeaveGroup for a static member (kgo.InstanceID): under KIP-345 a static member
// that restarts within its session timeout finds its partitions waiting, with no rebalance.
// But a member stopped cleanly may be going for good (a group shrinking from three instances
// to one), and then its partitions wait its whole session timeout (45 s by default) for
// another member. A Leaver therefore also leaves by instance id: a clean stop hands the
// partitions on at once, and only a crash (SIGKILL, a lost machine) keeps them for the
// restart.
package groupleave

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DefaultTimeout is how long Close waits for a clean leave when given no bound.
const DefaultTimeout = 5 * time.Second

// Leaver owns the base context of one Kafka client.
type Leaver struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// New returns a Leaver whose context is canceled only by Close.
func New() *Leaver {
	ctx, cancel := context.WithCancel(context.Background())
	return &Leaver{ctx: ctx, cancel: cancel}
}

// Opt is the client option that makes the Leaver's context the client's.
func (l *Leaver) Opt() kgo.Opt { return kgo.WithContext(l.ctx) }

// Leave leaves cl's group (running the revoke callback, when cl consumes in a group), by
// instance id too when cl is a static member, waiting at most d (DefaultTimeout when d <= 0).
// Past d it cancels cl's context, which ends any request in flight (a held JoinGroup, a
// commit), and returns the leave's error. Call Close (of cl, or of the session wrapping it)
// afterwards; it then returns promptly.
func (l *Leaver) Leave(cl *kgo.Client, d time.Duration) error {
	if d <= 0 {
		d = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	err := cl.LeaveGroupContext(ctx)
	if err == nil {
		err = leaveStatic(ctx, cl)
	}
	if err != nil {
		l.cancel()
	}
	return err
}

// leaveStatic sends the LeaveGroup kgo leaves out for a static member, naming it by its
// instance id and member id (a member that never got a member id is in no group; with the
// member id, a broker refuses to remove a newer member that took the instance id over). A
// member the group no longer knows (kgo left already) is no error.
func leaveStatic(ctx context.Context, cl *kgo.Client) error {
	group, _ := cl.OptValue(kgo.ConsumerGroup).(string)
	v := cl.OptValues(kgo.InstanceID)
	if group == "" || len(v) != 2 || v[1] != true {
		return nil
	}
	instance, _ := v[0].(string)
	memberID, _ := cl.GroupMetadata()
	if memberID == "" {
		return nil
	}
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = group
	m := kmsg.NewLeaveGroupRequestMember()
	m.MemberID, m.InstanceID = memberID, &instance
	req.Members = append(req.Members, m)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("leave group %s as static member %s: %w", group, instance, err)
	}
	errs := []error{kerr.ErrorForCode(resp.ErrorCode)}
	for _, rm := range resp.Members {
		if err := kerr.ErrorForCode(rm.ErrorCode); !errors.Is(err, kerr.UnknownMemberID) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("leave group %s as static member %s: %w", group, instance, err)
	}
	return nil
}

// Close is Leave followed by cl.Close; the client's context is canceled when it returns.
func (l *Leaver) Close(cl *kgo.Client, d time.Duration) error {
	err := l.Leave(cl, d)
	cl.Close()
	l.cancel()
	return err
}

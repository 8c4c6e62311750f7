package devkafka_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/devkafka"
)

const tornTopic = "torn"

// seedLog writes plain records p-0..p-(plain-1), one batch each, then txn
// records t-0..t-(txn-1) in one committed transaction, on a topic whose
// segments roll every segBytes, and stops the broker cleanly. It returns
// the partition directory.
func seedLog(t *testing.T, dir string, segBytes, plain, txn int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cluster, _, err := devkafka.Start(ctx, dir, nil, kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	addr := cluster.ListenAddrs()[0]
	cl := newClient(t, addr, kgo.DefaultProduceTopic(tornTopic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	seg := strconv.Itoa(segBytes)
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{"segment.bytes": &seg}, tornTopic); err != nil {
		t.Fatal(err)
	}
	for i := range plain {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("p-" + strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	if txn > 0 {
		var vals []string
		for i := range txn {
			vals = append(vals, "t-"+strconv.Itoa(i))
		}
		tcl := newClient(t, addr, kgo.TransactionalID("seed"), kgo.DefaultProduceTopic(tornTopic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err := tcl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if err := tcl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := tcl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
		tcl.Close()
	}
	cluster.Close()
	return filepath.Join(dir, "partitions", tornTopic+"-0")
}

// files returns the partition's files with the suffix, in offset order.
func files(t *testing.T, pdir, suffix string) []string {
	t.Helper()
	es, err := os.ReadDir(pdir)
	if err != nil {
		t.Fatal(err)
	}
	var bases []int
	for _, e := range es {
		if b, ok := strings.CutSuffix(e.Name(), suffix); ok {
			n, _ := strconv.Atoi(b)
			bases = append(bases, n)
		}
	}
	slices.Sort(bases)
	out := make([]string, len(bases))
	for i, b := range bases {
		out[i] = filepath.Join(pdir, strconv.Itoa(b)+suffix)
	}
	return out
}

func resize(t *testing.T, path string, delta int64) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()+delta); err != nil {
		t.Fatal(err)
	}
}

// corrupt xors the byte at pos of the file with x.
func corrupt(t *testing.T, path string, pos int, x byte) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[pos] ^= x
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// wantTorn checks that the broker refuses dir with ErrTorn naming path.
func wantTorn(t *testing.T, dir, path string) {
	t.Helper()
	if _, _, err := served(t, dir); !errors.Is(err, devkafka.ErrTorn) || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v, want ErrTorn naming %s", err, path)
	}
}

// served starts the broker on dir through devkafka.Start and returns the
// values a read_committed consumer reads, with the report.
func served(t *testing.T, dir string) ([]string, devkafka.Report, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cluster, rep, err := devkafka.Start(ctx, dir, nil, kfake.NumBrokers(1))
	if err != nil {
		return nil, rep, err
	}
	defer cluster.Close()
	return readCommittedTopic(t, ctx, cluster.ListenAddrs()[0], tornTopic), rep, nil
}

// readCommittedTopic reads partition 0 of topic read_committed up to a
// sentinel it writes first.
func readCommittedTopic(t *testing.T, ctx context.Context, addr, topic string) []string {
	t.Helper()
	p := newClient(t, addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("sentinel")}).FirstErr()
	p.Close()
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, addr, kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	defer c.Close()
	var got []string
	for {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("sentinel not read; read %q", got)
		}
		for _, r := range fs.Records() {
			if string(r.Value) == "sentinel" {
				return got
			}
			got = append(got, string(r.Value))
		}
	}
}

func values(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// TestTornData damages a data directory as a crash or power loss would and
// checks that the embedded broker either starts and says what it repaired,
// serving every record that was whole, or refuses naming the file.
func TestTornData(t *testing.T) {
	t.Run("partial last batch is cut and reported", func(t *testing.T) {
		dir := t.TempDir()
		pdir := seedLog(t, dir, 1<<20, 5, 0)
		dat := files(t, pdir, ".dat")
		resize(t, dat[len(dat)-1], -7)
		got, rep, err := served(t, dir)
		if err != nil {
			t.Fatal(err)
		}
		if want := values("p-", 4); !slices.Equal(got, want) {
			t.Fatalf("served %q, want %q", got, want)
		}
		if len(rep.Repaired) == 0 || !strings.Contains(rep.Repaired[0], dat[len(dat)-1]) {
			t.Fatalf("repairs %q do not name %s", rep.Repaired, dat[len(dat)-1])
		}
	})
	t.Run("corrupt batch in the middle is refused", func(t *testing.T) {
		dir := t.TempDir()
		pdir := seedLog(t, dir, 1<<20, 5, 0)
		dat := files(t, pdir, ".dat")[0]
		corrupt(t, dat, 30, 0x5a) // inside the first batch, past its CRC field: the CRC no longer matches
		wantTorn(t, dir, dat)
	})
	t.Run("overwritten base offset is refused", func(t *testing.T) {
		dir := t.TempDir()
		pdir := seedLog(t, dir, 1<<20, 5, 0)
		dat := files(t, pdir, ".dat")[0]
		corrupt(t, dat, 0, 0x80) // outside the CRC: only the offsets' order catches it
		wantTorn(t, dir, dat)
	})
	t.Run("torn older segment is refused", func(t *testing.T) {
		dir := t.TempDir()
		pdir := seedLog(t, dir, 200, 6, 0)
		dat := files(t, pdir, ".dat")
		if len(dat) < 2 {
			t.Fatalf("want several segments, got %q", dat)
		}
		resize(t, dat[0], -5)
		wantTorn(t, dir, dat[0])
	})
	t.Run("half-written index at the end cuts the unacknowledged batch", func(t *testing.T) {
		dir := t.TempDir()
		pdir := seedLog(t, dir, 1<<20, 3, 2)
		idx := files(t, pdir, ".idx")
		// The last batch is the COMMIT marker; drop its entry and half of
		// the entry before (the last transactional records).
		resize(t, idx[len(idx)-1], -15-7)
		got, rep, err := served(t, dir)
		if err != nil {
			t.Fatal(err)
		}
		if want := values("p-", 3); !slices.Equal(got, want) {
			t.Fatalf("served %q, want %q (the cut transaction aborted)", got, want)
		}
		if len(rep.Repaired) < 2 || len(rep.Hanging) != 1 {
			t.Fatalf("repairs %q, hanging %v: want the index and segment repairs and the transaction aborted", rep.Repaired, rep.Hanging)
		}
	})
	t.Run("index entries without batches are dropped", func(t *testing.T) {
		dir := t.TempDir()
		pdir := seedLog(t, dir, 1<<20, 3, 2)
		idx := files(t, pdir, ".idx")
		resize(t, idx[len(idx)-1], 15)
		got, rep, err := served(t, dir)
		if err != nil {
			t.Fatal(err)
		}
		if want := append(values("p-", 3), values("t-", 2)...); !slices.Equal(got, want) {
			t.Fatalf("served %q, want %q", got, want)
		}
		if len(rep.Repaired) != 1 || !strings.Contains(rep.Repaired[0], idx[len(idx)-1]) {
			t.Fatalf("repairs %q, want one naming %s", rep.Repaired, idx[len(idx)-1])
		}
	})
	t.Run("clean directory needs nothing", func(t *testing.T) {
		dir := t.TempDir()
		seedLog(t, dir, 200, 4, 3)
		got, rep, err := served(t, dir)
		if err != nil {
			t.Fatal(err)
		}
		if want := append(values("p-", 4), values("t-", 3)...); !slices.Equal(got, want) {
			t.Fatalf("served %q, want %q", got, want)
		}
		if len(rep.Repaired)+len(rep.Hanging) != 0 {
			t.Fatalf("clean directory: repairs %q, hanging %v", rep.Repaired, rep.Hanging)
		}
	})
}

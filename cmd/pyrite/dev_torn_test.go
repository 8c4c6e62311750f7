package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestDevRefusesTornLog: a data directory whose partition log is damaged in
// the middle (as by a power loss) makes pyrite dev refuse to start, naming
// the file, rather than serve the log cut short.
func TestDevRefusesTornLog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dataDir := t.TempDir()
	kafkaDir := filepath.Join(dataDir, "kafka")
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(kafkaDir))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"a", "b", "c"} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	cluster.Close()

	seg := filepath.Join(kafkaDir, "partitions", "t-0", "0.dat")
	raw, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	raw[30] ^= 0xff // inside the first batch (past its CRC field), more follow
	if err := os.WriteFile(seg, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	err = runDev(ctx, []string{"--data-dir", dataDir, "--kafka-addr", freeAddr(t), "--registry-addr", freeAddr(t),
		"--ingest-addr", freeAddr(t), "--projector-addr", freeAddr(t), "--upcaster-addr", freeAddr(t)}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), seg) {
		t.Fatalf("pyrite dev on a torn log: error %v, want one naming %s\n%s", err, seg, out.String())
	}
}

package worker

import (
	"context"
	"errors"
	"testing"

	"faas/internal/zsock"
	"faas/protocol"
	"faas/sandbox"
	"faas/task"
)

func TestRunRefusesBadConfig(t *testing.T) {
	sb, err := sandbox.New(context.Background(), sandbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close(context.Background())
	cases := []struct {
		name string
		cfg  Config
	}{
		{"no mode", Config{Endpoint: "tcp://127.0.0.1:1"}},
		{"bad mode", Config{Mode: "poll", Endpoint: "tcp://127.0.0.1:1"}},
		{"no endpoint", Config{Mode: "pull"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := Run(context.Background(), sb, c.cfg, nil); !errors.Is(err, ErrBadConfig) {
				t.Fatalf("Run = %v, want ErrBadConfig", err)
			}
		})
	}
}

func TestFitOutcomes(t *testing.T) {
	big := task.Outcome{Stdout: make([]byte, 40<<20)}
	if n := fitOutcomes([]task.Outcome{big, big}); n != 1 {
		t.Fatalf("two 40 MiB results in one message: fit = %d", n)
	}
	if n := fitOutcomes([]task.Outcome{{}, {}, {}}); n != 3 {
		t.Fatalf("three empty outcomes: fit = %d", n)
	}
}

func TestKeyNeedsDispatcherKey(t *testing.T) {
	cfg := Config{Mode: protocol.ModePush, Endpoint: "tcp://127.0.0.1:1", Key: zsock.KeyPair{Public: "p", Secret: "s"}}
	if _, err := cfg.withDefaults(&sandbox.Sandbox{}); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("a key without the dispatcher's: err = %v", err)
	}
}

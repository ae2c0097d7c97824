package worker

import (
	"context"
	"errors"
	"testing"

	"faas/sandbox"
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

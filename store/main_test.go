package store_test

import (
	"context"
	"flag"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"faas/store"
)

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	// go-redis logs every failed dial; the outage tests cause many on purpose.
	if os.Getenv("FAAS_TEST_REDIS_LOG") == "" {
		redis.SetLogger(quietLogger{})
	}
	// Every script runs checked: a key it touches outside its KEYS fails the test that ran
	// it. Benchmarks measure the scripts as they ship.
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		store.CheckDeclaredKeys()
	}
	os.Exit(m.Run())
}

package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// evalDurable runs a script as eval does and, when Config.WaitReplicas is set, WAIT right
// after it in the same pipeline: one connection, so that WAIT waits for this script's
// writes (WAIT counts up to the replication offset of the connection's own last write).
// Between them, a small write (replicatedKey) moves that offset past everything written
// before, so that a script that wrote nothing, a retry of a write already applied, still
// waits for the first attempt's writes. On a Cluster all three go to the master of the
// script's first key (its keys share a slot, and so does replicatedKey's). The script's
// reply is in the command whatever WAIT answers. Fewer replicas than asked within
// WaitTimeout (or a failed WAIT) goes to Config.NotReplicated, naming op; the write stands.
func (s *Store) evalDurable(ctx context.Context, op string, sc *script, c call) *redis.Cmd {
	n := s.cfg.WaitReplicas
	if n <= 0 {
		return s.eval(ctx, sc, c)
	}
	cmd, err := s.evalWait(ctx, sc, c, n)
	if err != nil && s.cfg.NotReplicated != nil {
		s.cfg.NotReplicated(op, err)
	}
	return cmd
}

func (s *Store) evalWait(ctx context.Context, sc *script, c call, n int) (*redis.Cmd, error) {
	var node interface {
		redis.Scripter
		Pipelined(context.Context, func(redis.Pipeliner) error) ([]redis.Cmder, error)
	} = s.rdb
	if cc, ok := s.rdb.(*redis.ClusterClient); ok && len(c.keys) > 0 {
		m, err := cc.MasterForKey(ctx, c.keys[0])
		if err != nil {
			cmd := redis.NewCmd(ctx)
			cmd.SetErr(err)
			return cmd, nil
		}
		node = m
	}
	var cmd *redis.Cmd
	var wait *redis.Cmd
	for try := 0; ; try++ {
		_, _ = node.Pipelined(ctx, func(p redis.Pipeliner) error {
			cmd = sc.rs.EvalSha(ctx, p, c.keys, c.argv...)
			p.Set(ctx, s.replicatedKey(c.keys), "1", time.Minute)
			wait = p.Do(ctx, "WAIT", n, s.cfg.WaitTimeout.Milliseconds())
			return nil
		})
		err := cmd.Err()
		if err == nil || try > 0 || !strings.HasPrefix(err.Error(), "NOSCRIPT") {
			break
		}
		// The node does not know the script yet (a restart, a failover, a new node).
		if err := sc.rs.Load(ctx, node).Err(); err != nil {
			return cmd, nil
		}
	}
	if cmd.Err() != nil {
		return cmd, nil // the script's own failure, as eval reports it
	}
	if err := wait.Err(); err != nil {
		return cmd, fmt.Errorf("%w: WAIT %d: %v", ErrNotReplicated, n, err)
	}
	if got, err := wait.Int64(); err != nil || got < int64(n) {
		return cmd, fmt.Errorf("%w: %d of %d replicas had the write within %s", ErrNotReplicated, got, n, s.cfg.WaitTimeout)
	}
	return cmd, nil
}

// replicatedKey is the key evalDurable writes before WAIT: in the slot of keys[0] (its hash
// tag; a Cluster's keys all have one), under the deployment's prefix.
func (s *Store) replicatedKey(keys []string) string {
	if len(keys) > 0 {
		k := keys[0]
		if i := strings.IndexByte(k, '{'); i >= 0 {
			if j := strings.IndexByte(k[i+1:], '}'); j > 0 {
				return k[:i+j+2] + ":replicated"
			}
		}
	}
	return s.cfg.Prefix + "replicated"
}

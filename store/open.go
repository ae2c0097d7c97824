package store

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Client timeouts set by Open. Reads and writes fail within about two seconds of Redis
// going silent (a stopped or paused server), so that callers can answer 503 quickly
// instead of hanging; go-redis retries once on a network error (every script is
// idempotent, see lua.go).
const (
	dialTimeout  = 2 * time.Second
	readTimeout  = 2 * time.Second
	writeTimeout = 2 * time.Second
	poolTimeout  = 3 * time.Second
	maxRetries   = 1
	// dialRetries bounds the dial attempts of one command (go-redis tries 5 times by
	// default, ~0.8 s against a refused port): a server down should be a quick 503.
	dialRetries = 2
)

// OpenOptions are what a Redis URL cannot carry, or should not.
type OpenOptions struct {
	// TLS configures rediss:// (CA, client certificate); nil keeps go-redis's defaults.
	TLS *tls.Config
	// Password, when set, replaces the URL's (read from a file, it stays out of ps).
	Password string
}

// Open parses a redis:// or rediss:// URL (or a comma-separated list of host:port for a
// cluster; a single host:port is a plain server) and returns a client; it does not ping.
// Errors show the URL with its password redacted.
func Open(url string) (redis.UniversalClient, error) { return OpenWith(url, OpenOptions{}) }

// OpenWith is Open with options. A TLS configuration needs a rediss:// URL (or a cluster
// list, whose nodes are then all reached over TLS).
func OpenWith(url string, o OpenOptions) (redis.UniversalClient, error) {
	url = strings.TrimSpace(url)
	if url == "" {
		return nil, fmt.Errorf("store: empty Redis URL")
	}
	if !strings.Contains(url, "://") {
		addrs := strings.Split(url, ",")
		for i, a := range addrs {
			addrs[i] = strings.TrimSpace(a)
			if addrs[i] == "" || !strings.Contains(addrs[i], ":") {
				return nil, fmt.Errorf("store: bad Redis address %q in %q: want host:port", RedactURL(a), RedactURL(url))
			}
		}
		if len(addrs) == 1 {
			url = "redis://" + addrs[0] + "/0"
		} else {
			return redis.NewClusterClient(&redis.ClusterOptions{
				Addrs:                 addrs,
				DialTimeout:           dialTimeout,
				ReadTimeout:           readTimeout,
				WriteTimeout:          writeTimeout,
				PoolTimeout:           poolTimeout,
				MaxRetries:            maxRetries,
				DialerRetries:         dialRetries,
				ContextTimeoutEnabled: true,
				TLSConfig:             o.TLS,
				Password:              o.Password,
			}), nil
		}
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		// go-redis's message may quote the URL: say what is wrong without it.
		return nil, fmt.Errorf("store: bad Redis URL %q: want redis://[[USER]:PASSWORD@]HOST:PORT/DB or rediss://...", RedactURL(url))
	}
	if o.TLS != nil {
		if opt.TLSConfig == nil {
			return nil, fmt.Errorf("store: Redis URL %q: TLS options need a rediss:// URL", RedactURL(url))
		}
		sn := opt.TLSConfig.ServerName
		opt.TLSConfig = o.TLS.Clone()
		if opt.TLSConfig.ServerName == "" {
			opt.TLSConfig.ServerName = sn
		}
	}
	if o.Password != "" {
		opt.Password = o.Password
	}
	tune(opt)
	return redis.NewClient(opt), nil
}

// tune sets the client timeouts, unless the URL set them.
func tune(opt *redis.Options) {
	if opt.DialTimeout == 0 {
		opt.DialTimeout = dialTimeout
	}
	if opt.ReadTimeout == 0 {
		opt.ReadTimeout = readTimeout
	}
	if opt.WriteTimeout == 0 {
		opt.WriteTimeout = writeTimeout
	}
	if opt.PoolTimeout == 0 {
		opt.PoolTimeout = poolTimeout
	}
	if opt.MaxRetries == 0 {
		opt.MaxRetries = maxRetries
	}
	if opt.DialerRetries == 0 {
		opt.DialerRetries = dialRetries
	}
	opt.ContextTimeoutEnabled = true
}

// userinfo finds the password of a URL that net/url cannot parse.
var userinfo = regexp.MustCompile(`(://[^/@]*?:)[^/@]*@`)

// RedactURL returns s with the password of its user information replaced by "xxxxx",
// whether or not s parses as a URL: it is what every message showing a Redis URL prints.
func RedactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			return u.Redacted()
		}
		return s
	}
	return userinfo.ReplaceAllString(s, "${1}xxxxx@")
}

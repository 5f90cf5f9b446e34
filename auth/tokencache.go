package auth

import (
	"sync"
	"time"
)

// tokenCacheSize bounds the verified tokens a Verifier remembers. A token
// is a few hundred bytes, so a full cache holds a few megabytes.
const tokenCacheSize = 16384

// tokenCache remembers the principals of tokens whose signature and claims
// have been verified, so that a client's later requests with the same token
// skip the signature check and the claims' JSON. The validity window is
// kept with the principal and checked again on every hit: a cached token
// stops working at its exp like any other.
type tokenCache struct {
	mu      sync.Mutex
	entries map[string]verified
}

// verified is a token that passed every check of Verify, with the times
// between which it is valid (leeway included).
type verified struct {
	p          Principal
	from, till time.Time
}

// get returns the principal of token when it was verified before and is
// valid at now.
func (c *tokenCache) get(token string, now time.Time) (Principal, bool) {
	c.mu.Lock()
	e, ok := c.entries[token]
	c.mu.Unlock()
	if !ok || now.Before(e.from) || !now.Before(e.till) {
		return Principal{}, false
	}
	return e.p, true
}

// clear forgets every token, so that each is verified again with the keys
// of now: a key set that dropped a key must not let its tokens through.
func (c *tokenCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
}

// put remembers a verified token. When the cache is full it first drops
// the entries that have expired at now and, if none has, an arbitrary
// eighth of them.
func (c *tokenCache) put(token string, e verified, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[string]verified)
	}
	if len(c.entries) >= tokenCacheSize {
		for k, old := range c.entries {
			if !now.Before(old.till) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < tokenCacheSize-tokenCacheSize/8 {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[token] = e
}

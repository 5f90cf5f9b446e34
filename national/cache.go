package national

import (
	"sync"
	"time"
)

// maxCacheEntries bounds the answer cache; past it, expired entries go first,
// then arbitrary ones.
const maxCacheEntries = 1024

// answerCache keeps complete national answers until they expire. An entry
// records when it was stored, not when it expires: its expiry follows the
// TTL in force when it is read, so that a reload that lowers
// national.cache_ttl, or sets 0, takes effect on the answers cached already
// rather than a minute later. The zero value is empty and ready to use.
type answerCache struct {
	mu      sync.Mutex
	entries map[string]cacheEntry
}

type cacheEntry struct {
	a      *Answer
	stored time.Time
}

// fresh reports whether e, read at now, is younger than ttl.
func (e cacheEntry) fresh(now time.Time, ttl time.Duration) bool {
	return now.Before(e.stored.Add(ttl))
}

// get returns the answer stored under key less than ttl before now.
func (c *answerCache) get(key string, now time.Time, ttl time.Duration) (*Answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	if !e.fresh(now, ttl) {
		delete(c.entries, key)
		return nil, false
	}
	return e.a, true
}

// put stores a under key at now; ttl, the TTL in force, decides which
// entries have expired when the cache is full.
func (c *answerCache) put(key string, a *Answer, now time.Time, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]cacheEntry{}
	}
	if len(c.entries) >= maxCacheEntries {
		for k, e := range c.entries {
			if !e.fresh(now, ttl) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < maxCacheEntries {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = cacheEntry{a: a, stored: now}
}

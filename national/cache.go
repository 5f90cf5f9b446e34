package national

import (
	"sync"
	"time"
)

// maxCacheEntries bounds the answer cache; past it, expired entries go first,
// then arbitrary ones.
const maxCacheEntries = 1024

// answerCache keeps complete national answers until they expire. The zero
// value is empty and ready to use.
type answerCache struct {
	mu      sync.Mutex
	entries map[string]cacheEntry
}

type cacheEntry struct {
	a       *Answer
	expires time.Time
}

func (c *answerCache) get(key string, now time.Time) (*Answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	if !now.Before(e.expires) {
		delete(c.entries, key)
		return nil, false
	}
	return e.a, true
}

func (c *answerCache) put(key string, a *Answer, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]cacheEntry{}
	}
	if len(c.entries) >= maxCacheEntries {
		now := time.Now()
		for k, e := range c.entries {
			if !now.Before(e.expires) {
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
	c.entries[key] = cacheEntry{a: a, expires: expires}
}

package dns

import (
	"container/list"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// cache holds upstream answers, positive and negative, until their TTL
// runs out, evicting the least recently used entry when full. Entries are
// shared and must not be modified. Safe for concurrent use.
type cache struct {
	mu    sync.Mutex
	size  int
	lru   *list.List // of *cacheEntry, most recently used first
	items map[string]*list.Element
}

type cacheEntry struct {
	key     string
	msg     *mdns.Msg
	stored  time.Time
	expires time.Time
}

func newCache(size int) *cache {
	return &cache{size: size, lru: list.New(), items: make(map[string]*list.Element, size)}
}

// get returns the answer stored under key and when it was stored, or
// false when there is none or it has expired by now.
func (c *cache) get(key string, now time.Time) (*mdns.Msg, time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.items[key]
	if el == nil {
		return nil, time.Time{}, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.lru.Remove(el)
		delete(c.items, key)
		return nil, time.Time{}, false
	}
	c.lru.MoveToFront(el)
	return e.msg, e.stored, true
}

// put stores m under key until expires.
func (c *cache) put(key string, m *mdns.Msg, now, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.items[key]; el != nil {
		e := el.Value.(*cacheEntry)
		e.msg, e.stored, e.expires = m, now, expires
		c.lru.MoveToFront(el)
		return
	}
	c.items[key] = c.lru.PushFront(&cacheEntry{key: key, msg: m, stored: now, expires: expires})
	for c.lru.Len() > c.size {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.items, old.Value.(*cacheEntry).key)
	}
}

// len returns the number of entries, expired or not.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

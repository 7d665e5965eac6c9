package logstream

import (
	"errors"
	"os"
	"time"
)

// Defaults of Config.
const (
	// DefaultBufferRecords is how many records may wait for one reader.
	DefaultBufferRecords = 4096
	// DefaultBufferBytes bounds the encoded bytes waiting for one reader.
	DefaultBufferBytes = 4 << 20
	// DefaultHistoryRecords is how many recent records a container keeps
	// for readers that ask for a backlog (Subscribe's tail).
	DefaultHistoryRecords = 100
	// DefaultHistoryBytes bounds one container's backlog in encoded bytes.
	DefaultHistoryBytes = 64 << 10
	// DefaultMaxHistoryContainers bounds how many containers keep a
	// backlog; past it the least recently written one without readers
	// loses its backlog.
	DefaultMaxHistoryContainers = 1024
)

// Config holds a Hub's settings. Start from DefaultConfig; New fills zero
// (or negative) fields with their defaults.
type Config struct {
	// BufferRecords is how many records may wait for one reader; past it
	// the reader loses records (and is told how many), the publisher never
	// waits.
	BufferRecords int
	// BufferBytes bounds the encoded bytes waiting for one reader.
	BufferBytes int
	// HistoryRecords is how many recent records a container keeps for
	// readers that ask for a backlog.
	HistoryRecords int
	// HistoryBytes bounds one container's backlog in encoded bytes.
	HistoryBytes int
	// MaxHistoryContainers bounds how many containers keep a backlog.
	MaxHistoryContainers int
	// Hostname and Pid fill the records (default: this host and process).
	Hostname string
	Pid      int
	// Now is the clock of record times (default time.Now).
	Now func() time.Time
}

// DefaultConfig returns a Hub's defaults (Hostname, Pid and Now are filled
// by New).
func DefaultConfig() Config {
	return Config{
		BufferRecords:        DefaultBufferRecords,
		BufferBytes:          DefaultBufferBytes,
		HistoryRecords:       DefaultHistoryRecords,
		HistoryBytes:         DefaultHistoryBytes,
		MaxHistoryContainers: DefaultMaxHistoryContainers,
	}
}

// Validate reports a Config whose buffers and backlog bounds are not all
// positive.
func (c Config) Validate() error {
	if c.BufferRecords < 1 || c.BufferBytes < 1 || c.HistoryRecords < 1 || c.HistoryBytes < 1 || c.MaxHistoryContainers < 1 {
		return errors.New("logstream: buffer records and bytes, history records and bytes and max history containers must be positive")
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.BufferRecords <= 0 {
		c.BufferRecords = DefaultBufferRecords
	}
	if c.BufferBytes <= 0 {
		c.BufferBytes = DefaultBufferBytes
	}
	if c.HistoryRecords <= 0 {
		c.HistoryRecords = DefaultHistoryRecords
	}
	if c.HistoryBytes <= 0 {
		c.HistoryBytes = DefaultHistoryBytes
	}
	if c.MaxHistoryContainers <= 0 {
		c.MaxHistoryContainers = DefaultMaxHistoryContainers
	}
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
	}
	if c.Pid == 0 {
		c.Pid = os.Getpid()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

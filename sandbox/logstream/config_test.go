package logstream

import "testing"

func TestConfigDefaultsAndValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	c := Config{BufferRecords: -1}
	c.setDefaults()
	if c.BufferRecords != DefaultBufferRecords || c.HistoryBytes != DefaultHistoryBytes {
		t.Errorf("setDefaults left %+v", c)
	}
	bad := DefaultConfig()
	bad.BufferRecords = 0
	if bad.Validate() == nil {
		t.Error("a zero per-reader buffer was accepted")
	}
}

package api

import (
	"strings"
	"testing"
	"time"
)

func TestConfigDefaultsAndValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	var zero Config
	zero.setDefaults()
	if zero != DefaultConfig() {
		t.Errorf("a zero Config with its defaults = %+v, want DefaultConfig() %+v", zero, DefaultConfig())
	}
	bad := DefaultConfig()
	bad.MaxBodyBytes = 100
	bad.LogPingInterval = -time.Second
	err := bad.Validate()
	if err == nil {
		t.Fatal("a 100-byte body limit and a negative ping interval were accepted")
	}
	for _, want := range []string{"max body bytes 100", "log ping interval"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error %q does not mention %q", err, want)
		}
	}
}

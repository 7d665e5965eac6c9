package clustertest

import (
	"testing"

	"github.com/webtaskd/webtaskd/daemon/daemontest"
)

func TestMain(m *testing.M) { daemontest.RunTests(m, "cluster", Child) }

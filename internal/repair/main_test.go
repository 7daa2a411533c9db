package repair_test

import (
	"testing"

	"clicks/internal/clickstest"
)

// The tests in package repair_test run the built program on logs they
// damaged while it was stopped, and check what its start-up repair says
// and mends (see docs/damaged-logs.md).

// TestMain: see clickstest.Main.
func TestMain(m *testing.M) { clickstest.Main(m) }

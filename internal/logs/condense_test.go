package logs

import "testing"

func TestCondense(t *testing.T) {
	goka := "1 error occurred:\n\t* error consuming from group consumer: 3 errors occurred:\n" +
		"\t* error processing message (partition=8): asynchronous error from callback: could not commit message with key 'user-9': 1 error occurred:\n" +
		"\t* an earlier write failed: write user-7 to mini-group-table: kafka server: Disk error when trying to access log file on the disk\n\n\n" +
		"\t* error processing message (partition=4): asynchronous error from callback: could not commit message with key 'user-7': 1 error occurred:\n" +
		"\t* kafka: Failed to produce message to topic mini-group-table: kafka server: Disk error when trying to access log file on the disk\n\n\n" +
		"\t* error setting up (partition=3): Setup failed. Cannot start processor for partition 3: 1 error occurred:\n" +
		"\t* open table cache data/processor/3: write data/processor/3/000001.log: no space left on device\n\n\n\n"
	tests := []struct {
		name, text, want string
		causes           int
	}{
		{"goka's tree", goka, "kafka: Failed to produce message to topic mini-group-table: kafka server: Disk error when trying to access log file on the disk; " +
			"open table cache data/processor/3: write data/processor/3/000001.log: no space left on device; " +
			"an earlier write failed: write user-7 to mini-group-table: kafka server: Disk error when trying to access log file on the disk", 3},
		{"the same cause many times", "3 errors occurred:\n\t* broker gone\n\t* broker gone\n\t* broker gone\n", "broker gone", 3},
		{"with a head", "[Processor mini-group] Error running/stopping partition processor 7: 1 error occurred:\n\t* write user-0: kafka server: Disk error\n\n",
			"[Processor mini-group] Error running/stopping partition processor 7: write user-0: kafka server: Disk error", 1},
		{"only earlier writes", "2 errors occurred:\n\t* an earlier write failed: A\n\t* an earlier write failed: B\n", "an earlier write failed: A; an earlier write failed: B", 2},
		{"at most three", "4 errors occurred:\n\t* A\n\t* B\n\t* C\n\t* D\n", "A; B; C", 4},
		{"no tree", "dial tcp 127.0.0.1:9092: connection refused", "dial tcp 127.0.0.1:9092: connection refused", 0},
		{"an empty tree", "broker gone: 0 errors occurred:", "broker gone", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, n := Condense(tc.text)
			if got != tc.want || n != tc.causes {
				t.Errorf("Condense = %q, %d; want %q, %d", got, n, tc.want, tc.causes)
			}
		})
	}
}

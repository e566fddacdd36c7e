// Package bench holds the queue's benchmarks; it has no code of its own.
//
// They measure, in one run, what the queue module promises in docs/design.md §9:
// consumed and published messages per second for Watermill's GoChannel (the
// in-process upper bound), SQLite in one process, SQLite shared by several OS
// processes and PostgreSQL; publish→handler latency at a fixed rate; the CPU
// that idle consumers burn; and, behind QUEUE_BENCH_MILLION=1, the file, WAL
// and memory footprint after a million messages. Every scenario has a fixed
// size, so one iteration is enough:
//
//	go test -run '^$' -bench . -benchtime 1x ./bench/        # from queue/
//	go tool task bench:queue                                  # the same
//
// Several OS processes are needed to measure a queue shared by processes, so
// the test binary starts copies of itself (QUEUE_BENCH_ROLE tells a copy which
// part to play). Environment variables change the sizes; see bench_test.go.
// The PostgreSQL cases run only when ORDERFLOW_TEST_POSTGRES_URL names a
// server, each in a fresh schema that is dropped afterwards.
package bench

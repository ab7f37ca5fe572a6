/*
Timeout safety under arrivals at any time: no request waits longer than max_wait (100 time units of 1 ms) while a worker is idle. Expected: satisfied (TChecker: late_idle unreachable).
*/
A[] not Tag.LateIdle

/*
Longest wait with a worker idle (time units), under arrivals at any time, over the states where no committed step is pending (as TChecker's); verify.py reports TChecker's exact value.
*/
sup{Tag.Waiting && nbusy < 1 && !Scheduler.Decide && !Scheduler.Notify}: z

/*
Timeout safety: no request waits longer than max_wait (100 time units of 1 ms) while a worker is idle. Expected: satisfied (TChecker: late_idle unreachable). Here under the token bucket of burst 3.
*/
A[] not Tag.LateIdle

/*
Longest wait with a worker idle (time units) under the token bucket of burst 3, over the states where no committed step is pending.
*/
sup{Tag.Waiting && nbusy < 1 && !Scheduler.Decide && !Scheduler.Notify}: z

/*
Worst-case latency (time units) under the token bucket of burst 3.
*/
sup{Tag.Waiting || Tag.InService_0}: z

/*
Largest queue length under the token bucket of burst 3.
*/
sup: q

/*
The queue never exceeds 31 (no drop). Expected: satisfied when sup: q < 32.
*/
A[] not QueueWatch.Exceeded

/*
Every admitted request is eventually served. Expected: satisfied (TChecker: no accepting cycle).
*/
Tag.Waiting --> (Tag.InService_0)

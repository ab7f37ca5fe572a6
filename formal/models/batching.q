/*
Deadlock freedom. Expected: satisfied.
*/
A[] not deadlock

/*
Whenever requests wait and a worker is idle, the scheduler is accumulating (Accum, where the invariant oldest <= POLICY_T holds) or deciding in zero time (committed locations). Expected: satisfied.
*/
A[] (q > 0 && exists (w : wid_t) !busy[w]) imply (Scheduler.Accum || Scheduler.Check || Scheduler.Dispatch || Scheduler.Notify)

/*
Timeout bound: no request waits longer than max_wait_ms while a worker is idle. Expected: satisfied.
*/
A[] Scheduler.Accum imply oldest <= MAX_WAIT

/*
The policy's own batch timeout T bounds the accumulation. Expected: satisfied.
*/
A[] Scheduler.Accum imply oldest <= POLICY_T

/*
The scheduler's view of worker 0 (busy[0]) matches the worker's location. Expected: satisfied.
*/
A[] (busy[0] imply Worker(0).Busy) && (Worker(0).Busy imply busy[0])

/*
Every admitted request is eventually dispatched. Expected: satisfied.
*/
Tag.Waiting --> Tag.InService

/*
Worst-case latency (time units) of any admitted request under the bounded arrival rate: arrival to completion.
*/
sup{Tag.Waiting || Tag.InService}: Tag.z

/*
Worst-case waiting time (time units) before a request's batch starts.
*/
sup{Tag.Waiting}: Tag.z

/*
Every admitted request meets slo_ms under the bounded arrival rate. Satisfied iff the worst-case latency is at most SLO.
*/
A[] Tag.InService imply Tag.z <= SLO

/*
Largest queue length reachable under the bounded arrival rate.
*/
sup: q

/*
Can the queue fill up (and drop the next arrival) under the bounded arrival rate?
*/
E<> q == QCAP

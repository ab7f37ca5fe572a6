/*
Probability that the queue fills up within 10000 time units from an empty system (compare with the Storm overflow figure).
*/
Pr[<=10000] (<> q == QCAP)

/*
Probability of at least one drop within the episode horizon (600000 time units).
*/
Pr[<=600000] (<> dropped > 0)

/*
Requests served in the horizon; throughput (requests/s) = this / horizon_s.
*/
E[<=600000; 200] (max: served)

/*
Busy time of worker 0 (time units); utilisation = this / horizon in time units.
*/
E[<=600000; 200] (max: Worker(0).work)

/*
Integral of the queue length (request x time units); mean queue = this / horizon.
*/
E[<=600000; 200] (max: qarea)

/*
One simulated trajectory of the queue and the counters.
*/
simulate[<=100000; 1] {q, served, dropped}

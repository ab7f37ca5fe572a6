/*
With 4 arrivals in all (the generator stops after the last: no more refills), the system only stops once every request is served. Expected: satisfied. (With unbounded arrivals A[] not deadlock would hold trivially.)
*/
A[] (deadlock imply (q == 0 && nbusy == 0))

/*
Every arrival can be served. Expected: satisfied.
*/
E<> (narr == 4 && q == 0 && nbusy == 0)

/*
The system can stop (so the first query is not vacuous). Expected: satisfied.
*/
E<> deadlock

// ScheduleService (issue 7).

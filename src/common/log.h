/* log.h: leveled logging to stderr, one line per message. */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

extern int log_level;
int log_level_parse(const char *s); /* -1 on unknown */
void log_msg(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define LOG_ERR(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define LOG_WARN(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define LOG_INFO(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define LOG_DEBUG(...)                                                        \
	do {                                                                  \
		if (log_level >= LOG_LVL_DEBUG)                               \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__);                  \
	} while (0)

#endif

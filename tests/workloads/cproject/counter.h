#ifndef COUNTER_H
#define COUNTER_H
int count_words(const char *text);
long sum_digits(const char *text);
#endif

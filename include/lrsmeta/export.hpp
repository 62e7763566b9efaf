// Symbol visibility: the shared library is built with hidden visibility; only what carries
// LRSMETA_API is part of its ABI.
#pragma once

#if defined(LRSMETA_STATIC_DEFINE)
#define LRSMETA_API
#elif defined(_WIN32)
#if defined(LRSMETA_BUILDING)
#define LRSMETA_API __declspec(dllexport)
#else
#define LRSMETA_API __declspec(dllimport)
#endif
#else
#define LRSMETA_API __attribute__((visibility("default")))
#endif

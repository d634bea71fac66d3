/* Shared by both entry paths: the stack, and capture of the entry state into
 * payload_entry_state (offsets follow struct entry_state in payload.h). */
#define ES_RSI 0
#define ES_RBX 8
#define ES_RSP 16
#define ES_RBP 24
#define ES_RFLAGS 32
#define ES_CR0 40
#define ES_CR3 48
#define ES_CR4 56
#define ES_EFER 64
#define ES_CS 72
#define ES_DS 74
#define ES_SS 76
#define ES_PVH 80

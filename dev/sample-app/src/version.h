/* The application's version; dev/sample-app/create-repo.ts commits v1, then v2. */
#define SAMPLE_APP_VERSION 1
#define SAMPLE_APP_GREETING "Hello from sample-app v1"

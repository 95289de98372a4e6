/** What gotd calls itself on the wire (agent=gotd/VERSION); keep in step with package.json. */
export const VERSION = '0.1.0';
export const AGENT = `gotd/${VERSION}`;

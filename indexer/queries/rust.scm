; Tags for Rust (aider repomap conventions + our import / parent / context captures).
; An impl block is a container named after its type, so its functions become methods.

(struct_item name: (type_identifier) @name.definition.struct) @definition.struct
(enum_item name: (type_identifier) @name.definition.enum) @definition.enum
(union_item name: (type_identifier) @name.definition.struct) @definition.struct
(trait_item name: (type_identifier) @name.definition.trait) @definition.trait
(type_item name: (type_identifier) @name.definition.type) @definition.type
(mod_item name: (identifier) @name.definition.module) @definition.module
(function_item name: (identifier) @name.definition.function) @definition.function
(function_signature_item name: (identifier) @name.definition.function) @definition.function
(macro_definition name: (identifier) @name.definition.macro) @definition.macro
(const_item name: (identifier) @name.definition.constant) @definition.constant
(static_item name: (identifier) @name.definition.constant) @definition.constant
(field_declaration name: (field_identifier) @name.definition.field) @definition.field
(impl_item type: [(type_identifier) @name.definition.impl
                  (generic_type type: (type_identifier) @name.definition.impl)]) @definition.impl

; use a::b::C -> module "a::b", names ["C"]; use a::b::{C, D as E}; use a::*.
(use_declaration argument: (scoped_identifier path: (_) @import.module name: (identifier) @import.name)) @import
(use_declaration argument: (identifier) @import.module) @import
(use_declaration argument: (use_as_clause path: (scoped_identifier path: (_) @import.module
  name: (identifier) @import.name) alias: (identifier) @import.alias)) @import
(use_declaration argument: (scoped_use_list path: (_) @import.module
  list: (use_list [(identifier) (self)] @import.name))) @import
(use_declaration argument: (scoped_use_list path: (_) @import.module
  list: (use_list (use_as_clause path: (identifier) @import.name alias: (identifier) @import.alias)))) @import
(use_declaration argument: (use_wildcard (_) @import.module) @import.name) @import
(extern_crate_declaration name: (identifier) @import.module) @import

(impl_item trait: [(type_identifier) (scoped_type_identifier) (generic_type)] @parent.name
  type: [(type_identifier) @parent.child (generic_type type: (type_identifier) @parent.child)])
(trait_item name: (type_identifier) @parent.child
  bounds: (trait_bounds [(type_identifier) (scoped_type_identifier) (generic_type)] @parent.name))

; == references and context ==

(call_expression function: [(identifier) @name.reference.call
                            (field_expression field: (field_identifier) @name.reference.call)
                            (scoped_identifier name: (identifier) @name.reference.call)])
(macro_invocation macro: (identifier) @name.reference.call)
(field_expression field: (field_identifier) @name.reference.attribute)
(struct_expression name: (type_identifier) @name.reference.class)
(type_identifier) @name.reference.type

(identifier) @context.identifier
(field_identifier) @context.identifier
(type_identifier) @context.type
[(string_literal) (raw_string_literal)] @context.string
(field_declaration) @context.field
